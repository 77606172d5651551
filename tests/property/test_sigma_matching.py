"""Sigma's value matching, as compiled to polars, agrees with a plain reference: ``*`` any text,
``?`` one character, the rest literal (regular-expression characters included), compared
without regard to case; and a list of values matches when any of them does."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detections import DetectionConfig, DetectionContext
from detector.events import records_to_events
from detector.sigma import compile_rules, example_record

PATTERN = st.text(alphabet="aB.(|-*?$", min_size=1, max_size=6)
VALUE = st.text(alphabet="aAbB.(|-$x", max_size=6)


def reference(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def sigma_matches(patterns: list[str], value: str) -> bool:
    text = f"""
title: Property
id: 7e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection:
        userAgent: {json.dumps(patterns)}
    condition: selection
"""
    rules = compile_rules([("property.yml", text)])
    assert not rules.refused, rules.refused
    (detection,) = rules.detections
    events = records_to_events([example_record({"userAgent": (value,)})], origin="p").events
    selected = events.lazy().filter(detection.selects)
    matched = detection.matches(selected, DetectionConfig(), DetectionContext()).collect()
    return matched.height == 1


@settings(max_examples=60, deadline=None)
@given(patterns=st.lists(PATTERN, min_size=1, max_size=3), value=VALUE)
def test_wildcards_and_lists_match_as_the_reference(patterns: list[str], value: str) -> None:
    assert sigma_matches(patterns, value) == any(reference(p, value) for p in patterns)
