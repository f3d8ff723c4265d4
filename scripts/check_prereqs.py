"""Check the machine has what the local pipeline needs; one clear sentence per missing piece."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys


def _java_major() -> int | None:
    if not shutil.which("java"):
        return None
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def main() -> int:
    problems = []
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs on whatever python3 is
        problems.append(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}).")
    java = _java_major()
    if java is None:
        problems.append("Java 17 is needed for local Spark: install a JDK 17 and put `java` on PATH.")
    elif java < 17:
        problems.append(f"Java 17 or newer is needed for local Spark (found Java {java}).")
    if not shutil.which("mvn"):
        problems.append(
            "Maven (`mvn`) is needed once, by `make install`, to fetch Delta Lake's and spark-avro's jars "
            "for local Spark: install Maven (e.g. `apt-get install maven`) and put `mvn` on PATH."
        )
    if not shutil.which("node") or not shutil.which("npm"):
        problems.append("Node.js with npm is needed for the Azurite storage emulator used by the tests.")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
