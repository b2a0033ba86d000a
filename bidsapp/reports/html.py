"""One self-contained page per participant: what was done to each run, what came out, the figures that show
it (embedded), and the methods text of these runs."""

from __future__ import annotations

import html
from pathlib import Path

from bidsapp.core.files import write_text
from bidsapp.reports.page import markdown, page


def participant_report(output_dir: Path, subject: str) -> Path | None:
    """Write ``sub-<subject>.html``: each run's summary, QC metrics and figures, then the methods text."""
    from bidsapp.outputs.reader import run_metas
    from bidsapp.reports.methods import fmriprep_version, methods
    from bidsapp.reports.run_report import run_section

    output_dir = Path(output_dir)
    sidecars = sorted((output_dir / f"sub-{subject}").rglob("*_timeseries.json"))
    if not sidecars:
        return None
    metas = run_metas(sidecars)
    nav = "<nav>" + "".join(f"<a href='#{html.escape(m['BIDSAppRun'], quote=True)}'>"
                            f"{html.escape(m['BIDSAppRun'].removeprefix(f'sub-{subject}_'))}</a>"
                            for m in metas) + " <a href='#methods'>methods</a></nav>"
    parts = [f"<h1>bidsapp report: sub-{html.escape(subject)}</h1>", nav]
    parts += [run_section(sc) for sc in sidecars]
    text, _ = methods(metas, fmriprep_version=fmriprep_version(output_dir))
    parts += ["<h2 id='methods'>Methods</h2><p class='muted'>The methods text of these runs (the whole output "
              "folder's is logs/CITATION.md, with logs/CITATION.bib).</p><div class='methods'>"
              + markdown(text.split("\n", 1)[1], shift=1) + "</div>"]
    versions = metas[-1]["SoftwareVersions"]
    parts.append("<h2>Software</h2><p class='muted'>"
                 + html.escape(", ".join(f"{k} {v}" for k, v in versions.items())) + "</p>")
    out = output_dir / f"sub-{subject}.html"
    write_text(out, page(f"bidsapp sub-{subject}", parts))
    return out
