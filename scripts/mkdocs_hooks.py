"""MkDocs hook: copy the kiosk's bundled CJK font into the built site (one copy in the repository,
assets/fonts/), so the documentation's Chinese renders offline on a machine without CJK fonts."""

import shutil
from pathlib import Path

FONT = Path(__file__).resolve().parent.parent / "assets" / "fonts" / "NotoSansSC-Regular.subset.otf"


def on_post_build(config, **kwargs):
    target = Path(config["site_dir"]) / "assets" / "fonts"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(FONT, target / FONT.name)
