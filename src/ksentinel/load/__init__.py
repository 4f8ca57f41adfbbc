"""Load tests: the flow catalogue run at scale by Locust, judged against the ``[slo]`` objectives.

Modules, and whether importing them is safe in a normal process (Locust monkey-patches the standard
library with gevent when it is imported, so only the locustfile side may import it):

    profiles    load/profiles.toml: users, stages, open-model rate, flow mix, sizes   (pure)
    settings    the KSENTINEL_LOAD_* environment contract runner <-> locustfile       (pure)
    arrival     the open-model arrival schedule (intended start times)                (pure)
    failures    LoadFailure and the bounded set of failure codes                      (pure)
    transport   the Locust transport: Transport protocol over FastHttpUser's client   (pure, duck-typed)
    summary     the JSON summary built from Locust's final stats                      (pure)
    verdict     SLO evaluation of a summary and the SLO table                         (pure)
    metrics     the ksentinel_load_* Prometheus collector over Locust's stats         (pure)
    users       FlowUser / ArrivalUser / the stages shape                             (imports locust)
    hooks       Locust event wiring: run tag, clean-up, workers, summary, exporter    (imports locust)
    cleanup     sweeping a run's tag persistently, and again after the settle time    (pure)
    lifeline    no Locust process outlives `ksentinel load` (parent-death signal, pipe) (pure)
    runner      run_load(): Locust headless in subprocesses                           (pure)
    command     the ``ksentinel load`` click command                                  (pure)
"""
