"""What must hold at every step of a fabric's history, judged from its events alone.

Each invariant is a fold over the event stream, in the style of Jepsen's checkers: it
keeps what it needs of the past, and at each event says whether that event breaks it
(a ``Breach``: why, and the earlier events that make it one). The same folds judge a
scenario as it runs and a real daemon's JSON log afterwards (``vtlfabric
check-history``). An invariant counts the events it weighed, so a sweep can say how
often each was exercised.

Events are dicts as structlog emits them: ``event`` is the name, the rest are fields.
"""

from __future__ import annotations

from typing import Any

import attrs

from vtlfabric.sim.faultnames import HEALED_BY, HEALING

Event = dict[str, Any]
VALID = "completed"
RESTARTED = "daemon.ready"  # a daemon process has started: whatever the last one held in memory is gone


@attrs.frozen
class Breach:
    why: str
    because: tuple[int, ...] = ()  # steps of earlier events that make this one a breach


@attrs.define
class Invariant:
    """One property; ``name`` and ``says`` are what a report shows."""

    name: str = ""
    says: str = ""
    exercised: int = 0

    def step(self, n: int, event: Event) -> Breach | None:
        raise NotImplementedError


@attrs.define
class FailedJobsNeverCopied(Invariant):
    """A job whose backup failed or was killed holds no valid data: no copy may take it."""

    name: str = "failed-jobs-never-copied"
    says: str = "no failed or killed job is ever on a secondary copy"
    _ended: dict[Any, tuple[str, int]] = attrs.field(factory=dict)  # job -> (status, step)

    def step(self, n: int, event: Event) -> Breach | None:
        name, job = event.get("event", ""), event.get("job_id")
        if name in ("backup.completed", "backup.failed", "backup.killed"):
            self._ended[job] = (name.partition(".")[2], n)
        elif name == "auxcopy.job_available":
            self.exercised += 1
            status, at = self._ended.get(job, (VALID, -1))
            if status != VALID:
                return Breach(f"job {job} ({status}) became available on {event.get('copy')}", (at,))
        return None


@attrs.define
class CopiedOnce(Invariant):
    """A copy takes a job once: again only after it lost it (damaged, aged) or a promotion."""

    name: str = "copied-once"
    says: str = "no job is on a copy twice"
    _held: dict[tuple[Any, Any], int] = attrs.field(factory=dict)  # (job, copy) -> step it became available

    def step(self, n: int, event: Event) -> Breach | None:
        name, key = event.get("event", ""), (event.get("job_id"), event.get("copy"))
        if name == "auxcopy.job_available":
            self.exercised += 1
            before = self._held.get(key)
            self._held[key] = n
            if before is not None:
                return Breach(f"job {key[0]} became available on {key[1]} again", (before,))
        elif name in ("copy.damaged", "aging.job_aged"):
            self._held.pop(key, None)
        elif name == "copy.promoted":  # roles changed: what each copy holds is the catalog's to say again
            self._held.clear()
        return None


@attrs.define
class DrivesHeldOnce(Invariant):
    """A drive holds one cartridge at a time, and a cartridge is in one drive at a time."""

    name: str = "drives-held-once"
    says: str = "no drive is ever held by two jobs, nor a cartridge in two drives"
    _in_drive: dict[Any, tuple[Any, int]] = attrs.field(factory=dict)  # drive -> (barcode, step)

    def step(self, n: int, event: Event) -> Breach | None:
        name, drive, barcode = event.get("event", ""), event.get("drive"), event.get("barcode")
        if name == RESTARTED:  # a daemon starts with every drive empty (a kill -9 left them in their slots)
            self._in_drive.clear()
        elif name == "drive.unloaded":
            self._in_drive.pop(drive, None)
        elif name == "drive.loaded":
            self.exercised += 1
            held = self._in_drive.get(drive)
            elsewhere = next(((d, at) for d, (b, at) in self._in_drive.items() if b == barcode and d != drive), None)
            self._in_drive[drive] = (barcode, n)
            if held is not None:
                return Breach(f"drive {drive} loaded {barcode} while it held {held[0]}", (held[1],))
            if elsewhere is not None:
                return Breach(f"cartridge {barcode} loaded in {drive} while in {elsewhere[0]}", (elsewhere[1],))
        return None


@attrs.define
class RestoresExact(Invariant):
    """Every job available on a copy restores byte-exact from it: a restore (or a drill's)
    whose objects fail their digests means a copy held what it should not."""

    name: str = "restores-exact"
    says: str = "every job available on a copy restores byte-exact from that copy"

    def step(self, n: int, event: Event) -> Breach | None:
        name = event.get("event", "")
        if name in ("restore.completed", "restore.failed"):
            self.exercised += 1
            failures = event.get("failures") or []
            bad = [f for f in failures if "digest" in str(f) or "verification" in str(f)]
            if name == "restore.failed" and bad:
                return Breach(f"restore of {event.get('client')} from {event.get('copy')}: {bad[0]}")
        return None


@attrs.define
class PromotionsReportLosses(Invariant):
    """A promotion may lose jobs the old primary held and the new one did not, but only
    ones it names: each valid job on the old primary is on the new one or reported lost."""

    name: str = "promotions-report-losses"
    says: str = "a promotion never loses a job it did not report"
    _on: dict[Any, dict[Any, int]] = attrs.field(factory=dict)  # copy -> job -> step it got there
    _valid: set[Any] = attrs.field(factory=set)
    _copy_of: dict[Any, Any] = attrs.field(factory=dict)  # job -> the copy its backup wrote

    def step(self, n: int, event: Event) -> Breach | None:
        name, job, copy = event.get("event", ""), event.get("job_id"), event.get("copy")
        if name == "backup.started":
            self._copy_of[job] = copy
        elif name == "backup.completed":
            self._valid.add(job)
            self._on.setdefault(self._copy_of.get(job, copy), {})[job] = n
        elif name == "auxcopy.job_available":
            self._on.setdefault(copy, {})[job] = n
        elif name in ("copy.damaged", "aging.job_aged"):
            self._on.get(copy, {}).pop(job, None)
        elif name == "copy.promoted":
            self.exercised += 1
            return self._judge(event)
        return None

    def _judge(self, event: Event) -> Breach | None:
        old, new = self._on.get(event.get("old_primary"), {}), self._on.get(event.get("copy"), {})
        reported = set(event.get("lost_jobs") or [])
        silent = sorted(j for j in old if j in self._valid and j not in new and j not in reported)
        if silent:
            return Breach(
                f"promotion of {event.get('copy')} lost job(s) {silent} it did not report", tuple(old[j] for j in silent)
            )
        return None


@attrs.define
class ActiveFaults:
    """Which lasting faults hold now, from fault.injected and fault.healed: a healing action
    ends every fault of its target that it heals (``clear`` ends a cartridge's read and
    write errors and its wrong label). One-shot faults (corrupt, fail-backup) never last."""

    active: dict[tuple[str, str], int] = attrs.field(factory=dict)  # (target, action) -> step it began
    quiet_since: float = 0.0  # the time the last of them healed (0: none ever held)

    def see(self, n: int, event: Event) -> None:
        name = event.get("event", "")
        if name == RESTARTED and self.active:  # the faults were set in the daemon that died
            self.active.clear()
            self.quiet_since = float(event.get("t", 0.0))
        if name not in ("fault.injected", "fault.healed"):
            return
        target, action = str(event.get("target", "")), str(event.get("action"))
        kind = target.partition(":")[0]
        if action in HEALING:
            for key in [k for k in self.active if k[0] == target and HEALED_BY.get((kind, k[1])) == action]:
                del self.active[key]
            if not self.active:
                self.quiet_since = float(event.get("t", 0.0))
        elif (kind, action) in HEALED_BY:
            self.active[(target, action)] = n


@attrs.define
class DrillsPass(Invariant):
    """Once every fault has healed, a drill passes: the DR site can restore. A client
    that never had a valid full backup cannot be restored anywhere: its failure in a
    drill is the drill's finding, not the fabric's fault."""

    name: str = "drills-pass"
    says: str = "every drill run with no fault active passes (for each client with a valid full backup)"
    _faults: ActiveFaults = attrs.field(factory=ActiveFaults)
    _fulls: dict[Any, Any] = attrs.field(factory=dict)  # job -> client, for full backups started
    _restorable: set[Any] = attrs.field(factory=set)  # clients with a completed full backup

    def step(self, n: int, event: Event) -> Breach | None:
        name = event.get("event", "")
        self._faults.see(n, event)
        if name == "backup.started" and event.get("type") == "full":
            self._fulls[event.get("job_id")] = event.get("client")
        elif name == "backup.completed" and event.get("job_id") in self._fulls:
            self._restorable.add(self._fulls[event.get("job_id")])
        elif name in ("drill.passed", "drill.failed") and not self._faults.active:
            self.exercised += 1
            failed = event.get("failed")
            blamed = [c for c in failed if c in self._restorable] if isinstance(failed, list) else ["?"]
            if name == "drill.failed" and blamed:
                return Breach(f"drill {event.get('drill')} failed with no fault active: {event.get('summary')}")
        return None


@attrs.define
class CrashedStaysDown(Invariant):
    """A crashed MediaAgent does nothing until it restarts: it loads no drive and makes no
    job available, and a backup its crash stopped ends failed, never completed."""

    name: str = "crashed-stays-down"
    says: str = "a crashed MediaAgent loads no drive and completes no job until it restarts"
    _down: dict[Any, int] = attrs.field(factory=dict)  # site -> step it crashed
    _stopped: dict[str, int] = attrs.field(factory=dict)  # "backup:N" -> step of the crash that stopped it

    def step(self, n: int, event: Event) -> Breach | None:
        name, site = event.get("event", ""), event.get("site")
        if name == RESTARTED:
            self._down.clear()
        elif name == "mediaagent.crashed":
            self._down[site] = n
            self._stopped.update({w: n for w in event.get("stopped") or [] if w.startswith("backup:")})
        elif name == "mediaagent.restarted":
            self._down.pop(site, None)
        elif name in ("backup.completed", "backup.failed", "backup.killed"):
            crash = self._stopped.pop(f"backup:{event.get('job_id')}", None)
            if crash is not None:
                self.exercised += 1
                if name == "backup.completed":
                    return Breach(f"backup job {event.get('job_id')} completed after a crash stopped it", (crash,))
        elif name in ("drive.loaded", "auxcopy.job_available") and site in self._down:
            self.exercised += 1
            what = (
                f"drive {event.get('drive')} loaded {event.get('barcode')}"
                if name == "drive.loaded"
                else (f"job {event.get('job_id')} became available on {event.get('copy')}")
            )
            return Breach(f"{what} while the MediaAgent of site {site} was down", (self._down[site],))
        return None


@attrs.define
class ScratchHoldsNoLiveData(Invariant):
    """A cartridge goes back to scratch (or is relabelled) only when no valid job's data on
    it is still held: a completed backup on the primary, or a job available on a copy,
    until it ages, is damaged, or a promotion reshuffles roles."""

    name: str = "scratch-holds-no-live-data"
    says: str = "no cartridge marked scratch holds live data"
    _on: dict[str, set[tuple[Any, Any]]] = attrs.field(factory=dict)  # barcode -> (job, copy) with a segment there
    _live: dict[tuple[Any, Any], int] = attrs.field(factory=dict)  # (job, copy) -> step it became live

    def step(self, n: int, event: Event) -> Breach | None:
        name, key = event.get("event", ""), (event.get("job_id"), event.get("copy"))
        if name == "segment.opened":
            self._on.setdefault(str(event.get("barcode")), set()).add(key)
        elif name in ("backup.completed", "auxcopy.job_available"):
            self._live[key] = n
        elif name in ("copy.damaged", "aging.job_aged"):
            self._live.pop(key, None)
        elif name in ("cartridge.scratch", "cartridge.relabelled"):
            self.exercised += 1
            barcode = str(event.get("barcode"))
            live = sorted((k for k in self._on.pop(barcode, set()) if k in self._live), key=str)
            if live:
                job, copy = live[0]
                return Breach(f"cartridge {barcode} went to scratch holding job {job} of {copy}", (self._live[live[0]],))
        return None


@attrs.define
class NoPlaintextOnWan(Invariant):
    """What crosses a WAN link is sealed: the scenario's wire tap (check/wiretap.py) logs
    ``wan.plaintext`` for any segment that carries a job's metadata in clear, and
    ``wan.scanned`` with what it looked at."""

    name: str = "no-plaintext-on-wan"
    says: str = "no plaintext crosses the WAN"

    def step(self, n: int, event: Event) -> Breach | None:
        name = event.get("event", "")
        if name == "wan.scanned":
            self.exercised += int(event.get("segments") or 0)
        elif name == "wan.plaintext":
            self.exercised += 1
            return Breach(f"link {event.get('link')} ({event.get('direction')}) carried {event.get('marker')!r} in clear")
        return None


@attrs.define
class HealthyBackupsComplete(Invariant):
    """A backup fails only for a reason: one that starts with no fault in force, and runs
    to its end with none injected or fired and no daemon restart, completes. A failure the
    client's configured failure rate drew (``backup.chance_failure``) is a reason too; a
    killed job is never judged, since an operator may kill any job."""

    name: str = "healthy-backups-complete"
    says: str = "a backup that runs start to end with no fault in force completes"
    _faults: ActiveFaults = attrs.field(factory=ActiveFaults)
    _armed: set[str] = attrs.field(factory=set)  # clients whose next backup a fault fails or kills
    _healthy: dict[Any, int] = attrs.field(factory=dict)  # job -> step it started, for healthy runs so far

    def step(self, n: int, event: Event) -> Breach | None:
        name, job = event.get("event", ""), event.get("job_id")
        self._faults.see(n, event)
        self._arm(event)
        if name in ("fault.injected", "fault.fired", "mediaagent.crashed", RESTARTED):
            self._healthy.clear()  # every backup running now ran with a fault, or lost its daemon
        elif name == "backup.chance_failure":
            self._healthy.pop(job, None)
        elif name == "backup.started" and not self._faults.active and event.get("client") not in self._armed:
            self._healthy[job] = n
        elif name in ("backup.completed", "backup.failed", "backup.killed"):
            started = self._healthy.pop(job, None)
            if started is not None:
                self.exercised += 1
                if name == "backup.failed":
                    return Breach(f"backup job {job} of {event.get('client')} failed: {event.get('reason')}", (started,))
        return None

    def _arm(self, event: Event) -> None:
        """A client fault waits for that client's next backup, and is spent once it fires,
        disarmed, or lost with the daemon that held it."""
        kind, _, client = str(event.get("target", "")).partition(":")
        if event.get("event") == RESTARTED:
            self._armed.clear()
        elif event.get("event") == "fault.injected" and kind == "client":
            self._armed.add(client)
        elif event.get("event") == "fault.disarmed" and kind == "client":
            self._armed.discard(client)
        elif event.get("event") == "fault.fired" and event.get("fault") in ("fail-backup", "kill-backup"):
            self._armed.discard(str(event.get("client", "")))


@attrs.define
class CaughtUpAfterHealing(Invariant):
    """Liveness: once every fault has healed, each synchronous copy catches up within the
    bound: at a lag sample taken a bound or more after the last fault healed, no job (a
    partially copied one included) has waited longer than the bound to be copied."""

    bound: float = 6 * 3600.0
    name: str = "caught-up-after-healing"
    says: str = "every synchronous copy catches up within the bound once the faults heal"
    _faults: ActiveFaults = attrs.field(factory=ActiveFaults)

    def step(self, n: int, event: Event) -> Breach | None:
        self._faults.see(n, event)
        if event.get("event") != "copy.lag" or event.get("kind") != "synchronous" or self._faults.active:
            return None
        t = float(event.get("t", 0.0))
        if t - self._faults.quiet_since < self.bound:
            return None
        self.exercised += 1
        age = float(event.get("oldest_uncopied_seconds") or 0.0)
        if age > self.bound:
            return Breach(
                f"copy {event.get('copy')}: a job has waited {age / 3600:.1f} h to be copied, "
                f"{(t - self._faults.quiet_since) / 3600:.1f} h after the last fault healed (bound {self.bound / 3600:g} h)"
            )
        return None


def every(liveness: float | None = None) -> list[Invariant]:
    """A fresh set of every invariant, ready to fold a history from its start; with a
    ``liveness`` bound (seconds), the copies must also catch up within it after healing."""
    safety: list[Invariant] = [
        FailedJobsNeverCopied(),
        CopiedOnce(),
        DrivesHeldOnce(),
        RestoresExact(),
        PromotionsReportLosses(),
        CrashedStaysDown(),
        ScratchHoldsNoLiveData(),
        NoPlaintextOnWan(),
        DrillsPass(),
        HealthyBackupsComplete(),
    ]
    return safety + ([CaughtUpAfterHealing(bound=liveness)] if liveness is not None else [])
