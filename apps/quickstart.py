"""``python -m apps.quickstart``: train the quickstart models if missing, then open the app.

The newcomer's one command: it trains ``runs/quickstart`` (Spanish -> English) and
``runs/quickstart-chat`` (DailyDialog) when they are not there yet (a half-finished one is
resumed), then starts the web app on 127.0.0.1 over the models folder. Extra arguments
go to ``python -m apps.web`` (e.g. ``--port 7861``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUICKSTART_PRESETS = ("quickstart", "quickstart-chat")


def ensure_trained(models: Path, preset: str) -> None:
    from seq2seq.config import load_config
    from seq2seq.runs import RunError, open_run
    from seq2seq.training import train

    output = models / preset
    try:
        open_run(output)
        print(f"{output}: already trained")
        return
    except RunError:
        pass
    resume = (output / "config.yaml").is_file()
    print(
        f"{output}: {'resuming' if resume else 'training'} preset {preset} (a few minutes on CPU)"
    )
    train(load_config(preset), output, resume=resume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.quickstart", description=__doc__)
    parser.add_argument("--models", default="runs", help="folder of run folders (default runs/)")
    parser.add_argument("--no-app", action="store_true", help="train only, do not launch")
    args, web_args = parser.parse_known_args(argv)
    from seq2seq.config import ConfigError
    from seq2seq.corpora.errors import CorpusError
    from seq2seq.runs import RunError

    models = Path(args.models)
    try:
        for preset in QUICKSTART_PRESETS:
            ensure_trained(models, preset)
    except (ConfigError, CorpusError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.no_app:
        return 0
    from apps import web

    return web.main(["--models", str(models), *web_args])


if __name__ == "__main__":
    sys.exit(main())
