"""``ksentinel check-traffic``: judge recorded Kaltura traffic (a HAR file) without sending anything.

* :mod:`~ksentinel.traffic.har` reads and validates a HAR document into plain :class:`Exchange` records;
* :mod:`~ksentinel.traffic.calls` finds the Kaltura call(s) of an exchange (service, action, format,
  parameters, multirequest sub-calls, the KS and secrets it carried);
* :mod:`~ksentinel.traffic.judge` judges each answer against the schema (error envelope, declared
  result type) and looks for KS and secrets echoed back;
* :mod:`~ksentinel.traffic.outcome` holds the verdicts, counts them and writes JSON and JUnit;
* :mod:`~ksentinel.traffic.command` is the click command.

See docs/traffic.md.
"""
