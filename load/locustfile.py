"""ksentinel's load suite: Locust users built from the flow catalogue (fork and edit this file).

Run it through ``ksentinel load --profile NAME`` (headless, SLO table and exit code at the end), or on
its own with Locust's web UI::

    KSENTINEL_URL=https://api.example.com KSENTINEL_PARTNER_ID=101 KSENTINEL_ADMIN_SECRET=... \\
    KSENTINEL_LOAD_PROFILE=smoke locust -f load/locustfile.py

The profile (``load/profiles.toml``) decides which of the classes below run and how many of each
(``mix``), the sizes of uploads and chunks, how sessions are made and the shape of the load: its
users, spawn rate and run time are the defaults of Locust's ``-u``/``-r``/``-t``. Each class of the
mix gets at least one user, the rest by weight (the hooks set each class's ``fixed_count`` when the
test starts); a closed-model run with fewer users than flows is refused (exit 2). Each class runs
one catalogue flow; a new class for another flow (or one registered here with
``@ksentinel.flows.flow``) needs only ``flow = "name"`` and a weight in the profile's mix.
"""

from __future__ import annotations

from pathlib import Path

from ksentinel.load import hooks
from ksentinel.load.users import ArrivalUser, FlowUser, load_run, stages_shape

RUN = load_run(Path(__file__).with_name("profiles.toml"))  # $KSENTINEL_LOAD_PROFILE, default smoke
PROFILE = RUN.profile
hooks.install(RUN)


class SessionUser(FlowUser):
    """session.start -> session.get -> session.end -> the ended KS is refused."""

    flow = "session"
    weight = PROFILE.weight("session")
    abstract = not PROFILE.runs("session")


class UploadUser(FlowUser):
    """uploadToken.add -> chunked upload -> addFromUploadedFile -> READY -> listed -> delete."""

    flow = "upload"
    weight = PROFILE.weight("upload")
    abstract = not PROFILE.runs("upload")


class BrowseUser(FlowUser):
    """Filtered and paged lists, gets of listed entries, with and without nocache."""

    flow = "browse"
    weight = PROFILE.weight("browse")
    abstract = not PROFILE.runs("browse")


class FlowArrivals(ArrivalUser):
    """The open model: flows of the mix start at the profile's arrival_rate, busy or not."""

    abstract = not PROFILE.open


# The stages of ramp / soak / spike as a LoadTestShape (None for the other profiles).
ProfileShape = stages_shape(PROFILE)
