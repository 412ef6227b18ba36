"""Edit a plan file in place, keeping its comments and layout (ruamel.yaml round trip).

Only ``heldout baseline --write`` writes the plan: the measured ``baseline:`` and the chosen
prompt, each with a comment saying where it came from. Everything else in the file — the
user's comments, key order, quoting, flow style — is left as it was.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from heldout.errors import HeldoutError

__all__ = ["write_baseline"]


def _indents(text: str) -> dict[str, int]:
    """The file's own indentation (mapping step, and how far a list's dash sits under its
    key), so a rewritten file keeps its layout; ruamel's defaults otherwise."""
    mapping = 2
    m = re.search(r"^(\S[^\n]*):[ \t]*\n( +)\S", text, re.M)
    if m:
        mapping = len(m.group(2))
    offset = 0
    seq = re.search(r"^( *)[^\s#-][^\n]*:[ \t]*\n( *)- ", text, re.M)
    if seq:
        offset = max(0, len(seq.group(2)) - len(seq.group(1)))
    return {"mapping": mapping, "sequence": offset + 2, "offset": offset}


def write_baseline(
    path: Path,
    *,
    baseline: float,
    note: str,
    prompt_file: str | None = None,
    template: str | None = None,
    chosen_on_gold: bool = False,
) -> None:
    """Set ``baseline`` (with ``note`` as its comment) and the task's prompt: ``prompt_file``
    (``task.prompt``) or ``template`` (``task.template``); the other one is removed.
    ``chosen_on_gold`` records ``baseline_search.use_gold: true`` (said in every report)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    text = path.read_text(encoding="utf-8")
    yaml.indent(**_indents(text))
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise HeldoutError(f"{path}: cannot edit the plan, it is not valid YAML ({exc})") from None
    if not isinstance(data, CommentedMap) or not isinstance(data.get("task"), CommentedMap):
        raise HeldoutError(f"{path}: cannot edit the plan: it has no 'task:' mapping")
    data["baseline"] = round(float(baseline), 6)
    data.yaml_add_eol_comment(note, "baseline")
    task = data["task"]
    if prompt_file is not None or template is not None:
        for key in ("prompt", "template"):
            if key in task:
                del task[key]
        if prompt_file is not None:
            task["prompt"] = prompt_file
            task.yaml_add_eol_comment("chosen by heldout baseline", "prompt")
        else:
            task["template"] = template
            task.yaml_add_eol_comment("chosen by heldout baseline", "template")
    if chosen_on_gold:
        search = data.get("baseline_search")
        if not isinstance(search, CommentedMap):
            search = CommentedMap()
            data["baseline_search"] = search
        search["use_gold"] = True
        search.yaml_add_eol_comment("the baseline prompt was chosen on the gold set", "use_gold")
    out = io.StringIO()
    yaml.dump(data, out)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(path)
