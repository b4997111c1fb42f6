"""The load test: what a run sends, how its responses are stamped, what they measure, the gates.

A locustfile imports the two modules that import locust, and nothing else of gatecheck::

    from locust import events
    from gatecheck.load import plugin
    from gatecheck.load.users import ChatStreamUser, ChatUser, RateUser, ...   # the users it may pick

    @events.init_command_line_parser.add_listener
    def _options(parser): plugin.add_arguments(parser)

    @events.init.add_listener
    def _attach(environment, **_kw): plugin.register(environment)

(``loadtests/locustfile.py`` is the shipped one.) Importing locust monkey-patches the process with
gevent, so only ``plugin``, ``users`` and ``shape`` import it; this package and every other module
in it import without locust: ``options`` (the options table), ``workload`` (what is sent and when),
``stampers`` (response bytes -> raw stamps), ``timing`` (raw stamps -> one request's metrics),
``stats`` (mergeable histograms), ``summary`` (the JSON summary), ``slo`` (objectives, the gate,
baselines), ``limits`` (the limits scenario) and ``html`` (the terminal table and the plots page).
"""
