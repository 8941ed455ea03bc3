"""A stand-in for ``python -m mtrl.train`` in the local engine's tests: ``python -m tests._fake_job rc=<n>
sleep=<s> ... hydra.run.dir=<d> resume=true`` writes its arguments to ``<d>/argv.txt``, sleeps, prints a last line
and exits with status ``rc``."""

import sys
import time
from pathlib import Path

if __name__ == "__main__":
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    run_dir = Path(args["hydra.run.dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "argv.txt").write_text("\n".join(sys.argv[1:]))
    time.sleep(float(args.get("sleep", 0)))
    rc = int(args.get("rc", 0))
    print(f"fake job ends with status {rc}")
    sys.exit(rc)
