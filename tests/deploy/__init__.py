"""Offline checks of deploy/: the image, the Kubernetes manifests and the CloudFormation templates.

The validators (cfn-lint, checkov, hadolint, kubernetes-validate) live in their own venv,
`.venv-tools` (``make tools``), and run as subprocesses; kustomize is ``kubectl kustomize`` or a
``kustomize`` binary. The CloudFormation stack is created in a moto server from the main venv.
"""
