"""The conformance suite: gatecheck's checks as pytest items, against any deployment.

    pytest conformance --base-url https://gw.example.com --model deepseek-v4-flash   # key: $GATECHECK_API_KEY
    pytest conformance                                                               # the embedded gateway

The plugin is loaded here, explicitly, so installing gatecheck adds no options to other pytest runs.
"""

pytest_plugins = ["gatecheck.pytest_plugin"]
