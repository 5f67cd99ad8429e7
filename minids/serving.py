"""A serving simulator (chapter 10): prefill and decode on the same GPUs (colocated) or
on separate ones (disaggregated, as DeepSeek-V3 serves, report §3.4).

Requests arrive at random (a Poisson process), each with a prompt to prefill and a
number of tokens to decode. A worker's costs come from a `Costs` model, measured on a
machine or taken from a paper:

    prefill(tokens)          seconds to prefill one prompt (compute-bound: ~ tokens)
    decode(batch, context)   seconds for one decoding step of `batch` requests holding
                             `context` cached tokens in all (memory-bound: ~ bytes read)

Colocated, each worker batches its running requests continuously and, when a prompt
waits, prefills it first: every decoding request on that worker stalls meanwhile.
(Real servers soften this by splitting long prompts into chunks; the stall remains.)
Disaggregated, prefill workers only prefill and hand the cache over (`transfer`
seconds) to decode workers, which only decode. `simulate` returns each request's time
to first token (TTFT) and time per output token after it (TPOT), and the throughput.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Costs:
    prefill_fixed: float  # seconds per prefill call
    prefill_per_token: float  # seconds per prompt token
    decode_fixed: float  # seconds per decoding step (weights read once per step)
    decode_per_request: float  # seconds per request in the step
    decode_per_context: float  # seconds per cached token read in the step
    transfer_per_token: float = 0.0  # seconds to move one token's cache between workers

    def prefill(self, tokens: int) -> float:
        return self.prefill_fixed + self.prefill_per_token * tokens

    def decode(self, batch: int, context: int) -> float:
        return (self.decode_fixed + self.decode_per_request * batch
                + self.decode_per_context * context)


@dataclass(frozen=True)
class Request:
    arrival: float  # seconds
    prompt: int  # tokens to prefill
    output: int  # tokens to decode (the first comes with the prefill)


@dataclass
class Served:
    request: Request
    first_token: float = 0.0  # when the first output token was ready
    done: float = 0.0  # when the last one was

    @property
    def ttft(self) -> float:
        return self.first_token - self.request.arrival

    @property
    def tpot(self) -> float:
        steps = self.request.output - 1
        return (self.done - self.first_token) / steps if steps else 0.0


def poisson_requests(rate: float, n: int, prompt: int, output: int, seed: int = 0,
                     spread: float = 0.5) -> list[Request]:
    """n requests arriving at `rate` a second on average; prompt and output lengths drawn
    uniformly within ±spread of the given means."""
    if rate <= 0 or n < 1 or prompt < 1 or output < 1 or not 0 <= spread < 1:
        raise ValueError("poisson_requests: need rate > 0, n, prompt, output >= 1, "
                         "0 <= spread < 1")
    rng, t, requests = random.Random(seed), 0.0, []

    def length(mean):
        return max(1, round(mean * rng.uniform(1 - spread, 1 + spread)))

    for _ in range(n):
        t += rng.expovariate(rate)
        requests.append(Request(t, length(prompt), length(output)))
    return requests


class _DecodeWorker:
    """Continuous batching: every step decodes one token for each running request."""

    def __init__(self, costs: Costs, max_batch: int):
        self.costs, self.max_batch = costs, max_batch
        self.running: list[tuple[Served, int]] = []  # (request, tokens still to decode)
        self.clock = 0.0

    def step(self):
        batch, waiting = self.running[: self.max_batch], self.running[self.max_batch:]
        context = sum(s.request.prompt + s.request.output - left for s, left in batch)
        self.clock += self.costs.decode(len(batch), context)
        still = []
        for served, left in batch:  # left: tokens still to decode, this one included
            if left == 1:
                served.done = self.clock
            else:
                still.append((served, left - 1))
        self.running = still + waiting


def simulate(requests: list[Request], costs: Costs, workers: int, mode: str,
             prefill_workers: int = 0, max_batch: int = 256) -> dict:
    """Serve the requests on `workers` GPUs (colocated) or on prefill_workers GPUs that
    prefill and workers - prefill_workers that decode (disaggregated). Returns the
    served requests and the summary figures."""
    if mode not in ("colocated", "disaggregated"):
        raise ValueError(f"simulate: mode must be 'colocated' or 'disaggregated', got {mode!r}")
    if mode == "disaggregated" and not 0 < prefill_workers < workers:
        raise ValueError(f"simulate: disaggregated needs 0 < prefill_workers < workers "
                         f"({workers}), got {prefill_workers}")
    served = [Served(r) for r in sorted(requests, key=lambda r: r.arrival)]
    if mode == "colocated":
        _colocated(served, costs, workers, max_batch)
    else:
        _disaggregated(served, costs, prefill_workers, workers - prefill_workers, max_batch)
    return summary(served)


def _colocated(served, costs, workers, max_batch):
    """Request i goes to worker i mod workers; a worker prefills a prompt that has
    arrived before its next decoding step (prefill first), stalling its decodes."""
    for w in range(workers):
        worker, queue = _DecodeWorker(costs, max_batch), served[w::workers]
        while queue or worker.running:
            if queue and (queue[0].request.arrival <= worker.clock or not worker.running):
                s = queue.pop(0)
                worker.clock = max(worker.clock, s.request.arrival) + costs.prefill(
                    s.request.prompt)
                s.first_token = s.done = worker.clock
                if s.request.output > 1:
                    worker.running.append((s, s.request.output - 1))
            else:
                worker.step()


def _disaggregated(served, costs, n_prefill, n_decode, max_batch):
    """Prefill GPUs take prompts first come, first served; request i's cache then moves
    to decode GPU i mod n_decode, which adds it to its batch at its next step."""
    free_at = [0.0] * n_prefill
    ready = {}  # request -> when its cache has reached the decode GPU
    for s in served:
        gpu = min(range(n_prefill), key=free_at.__getitem__)
        free_at[gpu] = max(free_at[gpu], s.request.arrival) + costs.prefill(s.request.prompt)
        s.first_token = s.done = free_at[gpu]
        ready[id(s)] = free_at[gpu] + costs.transfer_per_token * s.request.prompt
    for w in range(n_decode):
        worker = _DecodeWorker(costs, max_batch)
        incoming = sorted((s for s in served[w::n_decode] if s.request.output > 1),
                          key=lambda s: ready[id(s)])
        while incoming or worker.running:
            while incoming and ready[id(incoming[0])] <= worker.clock:
                s = incoming.pop(0)
                worker.running.append((s, s.request.output - 1))
            if worker.running:
                worker.step()
            else:
                worker.clock = ready[id(incoming[0])]


def summary(served: list[Served]) -> dict:
    """Throughput (output tokens a second over the whole run) and the TTFT and TPOT
    medians and 90th percentiles, in seconds."""
    def percentile(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))]

    start = min(s.request.arrival for s in served)
    end = max(s.done for s in served)
    tokens = sum(s.request.output for s in served)
    ttft = [s.ttft for s in served]
    tpot = [s.tpot for s in served if s.request.output > 1]
    return {"served": served, "throughput": tokens / (end - start),
            "ttft_p50": percentile(ttft, 0.5), "ttft_p90": percentile(ttft, 0.9),
            "tpot_p50": percentile(tpot, 0.5), "tpot_p90": percentile(tpot, 0.9)}
