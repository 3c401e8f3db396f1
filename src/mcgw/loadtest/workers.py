"""``--workers N``: one test spread over N processes, results merged.

Python (and the JS engine behind the GIL) uses one core per process, so a test that needs
more than one core runs its VUs in several processes. Each worker gets a share of every
scenario (:meth:`~mcgw.loadtest.scenario.Scenario.share`): VUs and shared iterations are
split as evenly as integers allow, ramping-vus targets are split at every instant, and
arrival-rate schedules are dealt round-robin (worker i starts iterations i, i+N, …), so
the whole still follows k6's schedule. ``setup`` runs once, in the parent, and its data
goes to every worker; ``teardown`` runs once at the end. Each worker sends back its raw
state — counters, rates and HdrHistograms (encoded) — and the parent merges them, so
percentiles are exact over all samples, not averages of percentiles. ``--out json``
writes one file per worker (``FILE.N``) that the parent concatenates.

Distributing over several machines is the same model with a different transport; see
the package docstring for the plan.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import shutil
import time
from dataclasses import replace

from mcgw.loadtest import metrics, runner, scenario
from mcgw.loadtest import options as options_mod


def _load_program(opts: options_mod.LoadOptions) -> runner.Program | None:
    if not opts.script:
        return None
    from mcgw.loadtest import script

    return script.load(opts.script, dict(opts.env))


def _worker(
    opts: options_mod.LoadOptions,
    scens: tuple[scenario.Scenario, ...],
    data: object,
    start_at: float,
) -> runner.RawResult:
    import uvloop

    program = _load_program(opts)

    async def go() -> runner.RawResult:
        # Every worker starts at the same wall-clock instant, so their schedules line up.
        await asyncio.sleep(max(0.0, start_at - time.time()))
        return await runner.run_raw(
            opts, None, program, setup_data=data, run_setup=False, scenarios=scens
        )

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        return loop_runner.run(go())


async def _setup(
    opts: options_mod.LoadOptions,
    program: runner.Program | None,
    scens: tuple[scenario.Scenario, ...],
) -> tuple[object, runner.Run]:
    state = runner.Run(replace(opts, out_json=None), scens, program or runner.plain(opts))
    data = await state.program.setup(state) if program is not None else None
    return data, state


def run(
    opts: options_mod.LoadOptions,
    progress: runner.ProgressCallback | None = None,
) -> metrics.Summary:
    """Run ``opts`` over ``opts.workers`` processes and return the merged summary."""
    n = opts.workers
    scens = runner.scenarios_for(opts)
    program = _load_program(opts)
    test_began = time.monotonic()  # k6's running (…) counts setup() in
    data, setup_state = asyncio.run(_setup(opts, program, scens))
    start_at = time.time() + 0.5
    ctx = multiprocessing.get_context("spawn")
    futures = []
    with concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx) as pool:
        for i in range(n):
            mine = tuple(s for s in (sc.share(i, n) for sc in scens) if s is not None)
            if not mine:
                continue
            worker_opts = replace(
                opts,
                workers=1,
                out_json=f"{opts.out_json}.{i}" if opts.out_json else None,
                # --rps caps the whole test: each worker gets its share of the rate.
                rps=opts.rps / n if opts.rps else None,
            )
            futures.append(pool.submit(_worker, worker_opts, mine, data, start_at))
        began = time.monotonic()
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=runner.PROGRESS_INTERVAL_S)
            if progress is not None:
                progress(
                    runner.Progress(
                        elapsed_s=time.monotonic() - began,
                        test_elapsed_s=time.monotonic() - test_began,
                        vus=0,
                        vus_max=sum(s.peak_vus for s in scens),
                        complete=0,
                        interrupted=0,
                        scenario=scens[0],
                    )
                )
        raws = [f.result() for f in futures]
    merged = setup_state.raw()
    # k6's test run duration (the rates' divisor) is setup's, the scenarios' and
    # teardown's: the workers' own start-up is not in it.
    around_s, merged.duration_s = merged.duration_s, 0.0
    for raw in raws:
        merged.merge(raw)
    if program is not None:
        # k6's summary comes after teardown: its requests count, as setup's do.
        after_s = int(merged.duration_s)
        began = time.monotonic()
        merged.merge(asyncio.run(_teardown_fresh(opts, program, scens, data, after_s)))
        around_s += time.monotonic() - began
    merged.duration_s += around_s
    if opts.out_json:
        with open(opts.out_json, "wb") as out:
            for i in range(n):
                part = f"{opts.out_json}.{i}"
                if os.path.exists(part):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out)
                    os.remove(part)
    return runner.summarize(merged, opts, scens)


async def _teardown_fresh(
    opts: options_mod.LoadOptions,
    program: runner.Program,
    scens: tuple[scenario.Scenario, ...],
    data: object,
    after_s: int,
) -> runner.RawResult:
    """Run teardown on a state of its own; return what it measured, its seconds in the
    timeline moved to after the workers' ``after_s`` (its VUs left out, as the run's are
    the workers'; its duration is the caller's to time)."""
    state = runner.Run(replace(opts, out_json=None), scens, program)
    await program.teardown(state, data)
    raw = state.raw()
    raw.duration_s, raw.vus_max = 0.0, 0
    raw.timeline = {after_s + second: bucket for second, bucket in raw.timeline.items()}
    return raw
