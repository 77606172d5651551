"""The long-running service: SQS in, findings out, state checkpointed (``detector run``)."""
