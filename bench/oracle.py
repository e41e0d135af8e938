"""What the oracle's cryptographic core costs: validating signed usage events, building the
epoch's Merkle trees, and BLS signing, aggregation and verification.

    .venv/bin/python bench/oracle.py [--events 2000] [--leaves 1000000] [--workers 2]

Figures, all in process on this machine:
- validation: EIP-712 digest + secp256k1 recovery of N signed events (eth-keys' backend named);
- the events tree of those N digests, and the lines tree of N settlement lines;
- the root over ``--leaves`` bytes32 leaves (encoding, leaf hashes, sort, tree) with the C
  extension on one thread and on ``--workers`` threads, and in pure Python as the baseline;
- BLS: sign, verify, aggregate 3 and 21 signatures and public keys, verify an aggregate;
- with ``--gas`` (needs anvil: ``make venv``): gas from real receipts on a Prague anvil for one
  epoch submission (2 of 3 oracles), one settlement line executed alone, lines executed in one
  batch (per line), and the resulting gas per usage event at ``--gas-events`` events per epoch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from eth_account import Account
from eth_keys.main import KeyAPI

from apicredits.metering.events import (
    Meter,
    UsageDomain,
    UsageEvent,
    UsageUnit,
    recover_signer,
    sign,
)
from apicredits.oracle import merkle
from apicredits.oracle.bls import (
    OracleKey,
    aggregate_public_keys,
    aggregate_signatures,
    verify,
    verify_aggregate,
)
from apicredits.oracle.merkle import MerkleTree
from apicredits.oracle.messages import (
    SETTLEMENT_LINE_TYPES,
    USAGE_EVENT_LEAF_TYPES,
    SettlementLine,
    event_id,
    job_id,
    provider_id,
)

DOMAIN = UsageDomain(8453, "0x" + "ab" * 20)


def timed(fn: Callable[[], object], rounds: int = 1) -> float:
    """Median seconds of ``rounds`` calls."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def keccak_backend() -> str:
    try:
        __import__("sha3")
        return "safe-pysha3"
    except ImportError:
        return "pycryptodome (raw C core)"


def bench_events(count: int) -> list[bytes]:
    signer = Account.create()
    events = [
        UsageEvent(
            event_id=event_id(f"req-{i}"),
            job_id=job_id(f"job-{i % 97}"),
            tenant="0x" + f"{i % 50:040x}",
            provider_id=provider_id(f"provider-{i % 7}"),
            model="gpt-4o-mini",
            units=(UsageUnit("input_tokens", 100 + i), UsageUnit("output_tokens", 20 + i)),
            tariff_version=3,
            cost_micro=1_000 + i,
            timestamp=1_700_000_000 + i,
            request_hash=os.urandom(32),
            sequence=i,
            meter=Meter.PROVIDER,
        )
        for i in range(count)
    ]
    start = time.perf_counter()
    signed = [sign(e, DOMAIN, signer.key) for e in events]
    signing = time.perf_counter() - start

    start = time.perf_counter()
    digests = []
    for s in signed:
        assert recover_signer(s, DOMAIN) == signer.address
        digests.append(s.event.digest(DOMAIN))
    validation = time.perf_counter() - start
    backend = type(KeyAPI().backend).__name__
    print(
        f"events: sign {count / signing:,.0f}/s; validate (digest + recover) "
        f"{count / validation:,.0f}/s = {validation / count * 1e3:.2f} ms each [{backend}]"
    )

    seconds = timed(lambda: MerkleTree.build(USAGE_EVENT_LEAF_TYPES, [[d] for d in digests]), 3)
    print(f"events tree of {count:,}: {seconds * 1e3:.1f} ms ({count / seconds:,.0f} leaves/s)")
    lines = [
        SettlementLine(42, "0x" + f"{i:040x}", provider_id(f"p{i % 7}"), 1000 * i, i)
        for i in range(count)
    ]
    seconds = timed(lambda: MerkleTree.build(SETTLEMENT_LINE_TYPES, [x.values() for x in lines]), 3)
    print(f"lines tree of {count:,}: {seconds * 1e3:.1f} ms ({count / seconds:,.0f} leaves/s)")
    return digests


def bench_big_tree(leaves: int, workers: int) -> None:
    values = [[os.urandom(32)] for _ in range(leaves)]
    native = merkle._native  # type: ignore[attr-defined]  # the C extension, if built
    backend = "C extension" if native is not None else keccak_backend()
    start = time.perf_counter()
    serial = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, values)
    seconds = time.perf_counter() - start
    print(f"root of {leaves:,} bytes32 leaves, 1 thread: {seconds:.2f} s [{backend}]")

    # The C extension releases the GIL, so threads share the leaf hashing.
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        parallel = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, values, executor=pool, workers=workers)
        seconds = time.perf_counter() - start
    assert parallel.root == serial.root
    print(f"root of {leaves:,} bytes32 leaves, {workers} threads: {seconds:.2f} s [{backend}]")

    if native is not None:  # the baseline: the same tree in Python, as without a compiler
        merkle._native = None  # type: ignore[attr-defined,assignment]
        try:
            start = time.perf_counter()
            python = MerkleTree.build(USAGE_EVENT_LEAF_TYPES, values)
            seconds = time.perf_counter() - start
        finally:
            merkle._native = native  # type: ignore[attr-defined]
        assert python.root == serial.root
        print(f"root of {leaves:,} bytes32 leaves, pure Python: {seconds:.2f} s", end=" ")
        print(f"[{keccak_backend()}]")
    start = time.perf_counter()
    for i in range(0, leaves, max(1, leaves // 1000)):
        serial.proof(i)
    per = (time.perf_counter() - start) / len(range(0, leaves, max(1, leaves // 1000)))
    print(f"proof in a tree of {leaves:,}: {per * 1e6:.0f} µs")


def bench_bls() -> None:
    message = os.urandom(32)
    keys = [OracleKey.generate() for _ in range(21)]
    signatures = [k.sign(message) for k in keys]
    public_keys = [k.public_key for k in keys]
    ms = 1e3
    print(f"BLS sign: {timed(lambda: keys[0].sign(message), 50) * ms:.2f} ms")
    check = timed(lambda: verify(public_keys[0], message, signatures[0]), 50)
    print(f"BLS verify: {check * ms:.2f} ms")
    for n in (3, 21):
        agg_sig = timed(lambda n=n: aggregate_signatures(signatures[:n]), 50)  # type: ignore[misc]
        agg_pk = timed(lambda n=n: aggregate_public_keys(public_keys[:n]), 50)  # type: ignore[misc]
        aggregate = aggregate_signatures(signatures[:n])
        check = timed(
            lambda n=n, a=aggregate: verify_aggregate(public_keys[:n], message, a),  # type: ignore[misc]
            20,
        )
        print(
            f"BLS aggregate {n}: signatures {agg_sig * ms:.2f} ms, public keys "
            f"{agg_pk * ms:.2f} ms (with subgroup checks); verify_aggregate {check * ms:.2f} ms"
        )


def bench_gas(events_per_epoch: int, tenants: int = 4, providers: int = 5) -> None:
    """Gas from receipts on anvil: submission, one line alone, a batch of lines."""
    from apicredits.chain import deploy, deposit_test_funds
    from apicredits.chain.anvil import running_anvil
    from apicredits.chain.rpc import RpcChain
    from apicredits.oracle.epochs import build_epoch
    from apicredits.oracle.records import EpochRecord

    with running_anvil() as url:
        chain = RpcChain(url)
        try:
            d = deploy(chain, dispute_window_seconds=0)
            admin, payout, *wallets = chain.accounts[1 : 2 + tenants + 1]
            wallets = wallets[:tenants]
            pids = [provider_id(f"gas-provider-{p}") for p in range(providers)]
            registry = d.address("provider_registry")
            for pid in pids:
                chain.transact(registry, "provider_registry", "register", pid, admin, payout,
                               sender=admin)  # fmt: skip
            for wallet in wallets:
                deposit_test_funds(chain, d, tenant=wallet, amount=100_000_000)
            oracles = [OracleKey.generate() for _ in range(3)]
            for key in oracles:
                chain.transact(d.receipts, "usage_receipts", "register_oracle", key.public_key,
                               key.proof_of_possession())  # fmt: skip
            chain.transact(d.receipts, "usage_receipts", "set_threshold", 2)
            domain = UsageDomain(chain.chain_id, d.receipts)
            signer = Account.create()
            count = tenants * providers
            events = [
                sign(UsageEvent(
                    event_id=event_id(f"gas-{e}-{i}"), job_id=job_id("gas"),
                    tenant=wallets[i % tenants], provider_id=pids[(i // tenants) % providers],
                    model="m", units=(UsageUnit("input_tokens", 10),), tariff_version=1,
                    cost_micro=1_000 + i, timestamp=1_700_000_000, request_hash=bytes(32),
                    sequence=i, meter=Meter.GATEWAY), domain, signer.key)
                for e in range(2) for i in range(count)
            ]  # fmt: skip
            gas: dict[str, int] = {}
            for epoch, part in ((1, events[:count]), (2, events[count:])):
                build = build_epoch(epoch, part, domain, fee_bps=100)
                summary = build.summary(domain)
                shares = [k.sign(summary.message()) for k in oracles[:2]]
                receipt = chain.transact(
                    d.receipts, "usage_receipts", "submit_epoch", epoch, summary.events_root,
                    summary.lines_root, summary.line_count, summary.total_micro, 0b11,
                    oracles[0].public_key + oracles[1].public_key, aggregate_signatures(shares),
                )  # fmt: skip
                gas.setdefault("submit", receipt.gas_used)
                (logged,) = chain.receipt_events(receipt, "usage_receipts", "EpochSubmitted")
                record = EpochRecord.from_log(logged.args).values()
                if epoch == 1:
                    for i, name in ((0, "first"), (1, "single")):
                        line = build.lines[i].values()
                        single = chain.transact(
                            d.treasury, "settlement_treasury", "execute_line",
                            epoch, record, *line[1:], build.line_proof(i),
                        )  # fmt: skip
                        gas[name] = single.gas_used
                else:
                    batch = chain.transact(
                        d.treasury, "settlement_treasury", "execute_lines", epoch, record,
                        [line.values()[1:] for line in build.lines],
                        [build.line_proof(i) for i in range(len(build.lines))],
                    )  # fmt: skip
                    gas["batch"] = batch.gas_used
        finally:
            chain.close()
    per_line = gas["batch"] // count
    print(f"gas: submit_epoch (2 of 3 oracles): {gas['submit']:,}")
    print(
        f"gas: execute_line alone (tree of {count} lines): {gas['single']:,} "
        f"(the very first line, touching cold balances: {gas['first']:,})"
    )
    print(
        f"gas: execute_lines, {count} lines in one call: {gas['batch']:,} = {per_line:,} per line"
    )
    per_event = (gas["submit"] + gas["batch"]) / events_per_epoch
    print(
        f"gas per usage event at {events_per_epoch:,} events per epoch "
        f"({count} lines, batched): {per_event:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gas", action="store_true", help="gas figures from anvil")
    parser.add_argument("--gas-events", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    bench_events(args.events)
    bench_big_tree(args.leaves, args.workers)
    bench_bls()
    if args.gas:
        bench_gas(args.gas_events)


if __name__ == "__main__":
    main()
