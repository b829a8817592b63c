"""VQA sources, whose items are questions on shared images (`VqaSource`), and their option
`group_questions: per_image`: all questions about one image as one multi-turn sample.

A VQA dataset asks many questions of one image (SLAKE ~22 per image, PMC-VQA ~1.5 per figure); one sample
per question stores the image once per question. With the option, the questions of one image become one
I2T sample, in UniMedVL's own multi-turn shape (the shape of LLaVA-Med's conversations):

    message = [human "<image>\\nQ1", gpt A1, human Q2, gpt A2, ...]      input_images = [the image]

The image placeholders stay in the first human turn only (the released SFT loader places each input image at
the placeholders of one human turn); a later question loses its placeholders (and whatever the adapter's
`follow_up_question` strips, e.g. Medical-Diff-VQA's "the first image is ..." preface).

Options (recipe `sources[].options`; checked by `VqaSource.check_options` when the recipe is read and again
when the adapter lists its units; any other adapter refuses them):
- `group_questions`: `per_image`, or `per_question` (the default: the paper counts one sample per question);
- `max_turns` (default 8): questions per sample at most; an image with more questions gives several samples,
  each storing the image;
- `max_chars` (default 1024, the paper's upper bound of the text rule): a sample closes before its dataset
  text (`source_text`, whitespace collapsed, what the 10-1024 rule measures) passes this, so a group never
  fails the length rule that its questions pass one by one. Set it to the recipe's `filters.text_max_chars`
  when that differs. A single question longer than this is a one-turn sample, judged as today.

Rules:
- Only the training splits (`GROUPED_SPLITS`: train, unsplit) are grouped; validate and test stay one sample
  per question, as evaluation counts them and as benchmark decontamination reads them.
- Ids: `<source>/<split>/image/<image key>/<n>`, the image key from the adapter (`VqaSource.image_key`),
  n = 0, 1, ... in the order the groups of that image open. Questions keep the dataset's order (the adapter
  lists an image's questions in file order, all of them in one work unit: `VqaSource.image_units`); a group is
  cut at `max_turns` questions or `max_chars`, in that order, so the same input and options give the same
  ids and turns on every run.
- Questions join a group only with questions of the same task types, modality, image count and
  `meta.language` (SLAKE's English and Chinese questions of one image are two groups; so are a SLAKE
  image's questions with and without an attached rationale).
- An adapter lists its units with `image_units` and passes its one-question results through `grouped_records`;
  its quirks are `image_key` (what names the image) and `follow_up_question` (a later question's human turn).
- A question the adapter rejects (empty answer, unreadable image, ...) is still its own rejected row with
  its reason; the group holds the kept ones. `meta.questions` lists the ids of a group's questions, so every
  input question is in exactly one place: a turn of one sample or one rejected row.
- `meta`: the keys every question of the group shares stay at the top; `meta.questions` holds, per
  question, its id and its own values of the other keys; `meta.grouped_by` = "image".
- The group keeps its image, so exact dedup (pixels + text) and benchmark decontamination (pixel hash,
  pHash) still see it; the text rules see the whole conversation (so a question under the 10-character
  minimum passes inside a group, where on its own it would be `text_too_short`; two identical questions of
  one image, one of them `exact_duplicate` per question, are two turns of one group: dedup judges samples).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from manifests.records import IMAGE_TOKEN, Record, Rejection, dataset_text
from sources.base import VQA_OPTIONS, Source, SourceError, WorkUnit

GROUP_OPTION, MAX_TURNS_OPTION, MAX_CHARS_OPTION = VQA_OPTIONS
PER_IMAGE, PER_QUESTION = "per_image", "per_question"
DEFAULT_MAX_TURNS, DEFAULT_MAX_CHARS = 8, 1024
GROUPED_SPLITS = ("train", "unsplit")


@dataclass(frozen=True)
class QuestionGrouping:
    max_turns: int = DEFAULT_MAX_TURNS
    max_chars: int = DEFAULT_MAX_CHARS


def parse_grouping(options: dict[str, Any]) -> QuestionGrouping | None:
    """The grouping a source's options ask for (None: one sample per question); ValueError names a bad value."""
    mode = options.get(GROUP_OPTION) or PER_QUESTION
    if mode not in (PER_IMAGE, PER_QUESTION):
        raise ValueError(f"option {GROUP_OPTION} must be {PER_IMAGE} or {PER_QUESTION}, not {mode!r}")
    caps = {name: options[name] for name in (MAX_TURNS_OPTION, MAX_CHARS_OPTION) if name in options}
    if mode == PER_QUESTION:
        if caps:
            raise ValueError(f"option {'/'.join(caps)} caps the groups of `{GROUP_OPTION}: {PER_IMAGE}`; "
                             f"add that option or drop {'/'.join(caps)}")
        return None
    for name, value in caps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option {name} must be a positive whole number, not {value!r}")
    return QuestionGrouping(**caps)


def cut_by_image(items: Sequence[Any], image_of: Callable[[Any], str], size: int) -> list[list[Any]]:
    """Items in runs by image (images in key order, each image's items in their given order), cut into chunks
    of about `size` items that never split an image: a chunk closes before an image that would pass `size`;
    an image with more items than `size` is a chunk of its own."""
    by_image: dict[str, list[Any]] = {}
    for item in items:
        by_image.setdefault(image_of(item), []).append(item)
    chunks: list[list[Any]] = []
    current: list[Any] = []
    for key in sorted(by_image):
        run = by_image[key]
        if current and len(current) + len(run) > size:
            chunks.append(current)
            current = []
        current.extend(run)
    if current:
        chunks.append(current)
    return chunks


def without_placeholders(text: str) -> str:
    """A follow-up question's text: the image is already placed in the first human turn."""
    return text.replace(IMAGE_TOKEN, " ").strip()


def _dataset_chars(parts: Iterable[str | None]) -> int:
    return len(" ".join(dataset_text(*parts).split()))


def _signature(record: Record) -> tuple:
    return (record.task_family, record.main_task_type, record.sub_task_type, record.modality,
            len(record.input_images), len(record.output_images), record.meta.get("language"))


def _text_of(record: Record) -> str:
    return record.source_text if record.source_text is not None else \
        " ".join(turn["value"].replace(IMAGE_TOKEN, " ") for turn in record.message)


def merge_questions(records: Sequence[Record], group_id: str,
                    follow_up: Callable[[str], str] = without_placeholders) -> Record:
    """One multi-turn sample from one-question records of one image: the first record's image and facts, every
    record's turns in order (a later record's human turns through `follow_up`)."""
    first = records[0]
    message = [dict(turn) for turn in first.message]
    for record in records[1:]:
        message.extend({"from": turn["from"], "value": follow_up(turn["value"]) if turn["from"] == "human"
                        else turn["value"]} for turn in record.message)
    shared = {key: value for key, value in first.meta.items()
              if all(key in other.meta and other.meta[key] == value for other in records[1:])}
    questions = [{"id": record.id, **{key: value for key, value in record.meta.items() if key not in shared}}
                 for record in records]
    return dataclasses.replace(
        first, id=group_id, message=message,
        provenance=list(dict.fromkeys(path for record in records for path in record.provenance)),
        source_text=dataset_text(*(_text_of(record) for record in records)),
        meta={**shared, "grouped_by": "image", "questions": questions}, scores={})


def group_by_image(results: Iterable[Record | Rejection], group_of: Callable[[Record], str | None],
                   grouping: QuestionGrouping, follow_up: Callable[[str], str] = without_placeholders,
                   ) -> Iterator[Record | Rejection]:
    """An adapter's one-question results with the records of each image merged (see the module docstring).

    Rejections and records without a group (`group_of` None) pass through at once. The records of one group
    stem must come in one run (the adapter's units list an image's questions together): the open groups are
    emitted when the stem changes, so memory holds one image's questions. Should a stem come back later in
    the unit, its numbering goes on, so ids stay unique.
    """
    stem: str | None = None
    open_groups: dict[tuple, tuple[int, list[Record]]] = {}  # signature -> (number, records) of the current stem
    opened: dict[str, int] = {}  # stem -> groups opened so far in this unit

    def emit(signature: tuple) -> Record:
        number, records = open_groups.pop(signature)
        return merge_questions(records, f"{stem}/{number}", follow_up)

    for item in results:
        key = group_of(item) if isinstance(item, Record) else None
        if key is None:
            yield item
            continue
        if key != stem:
            for signature in list(open_groups):
                yield emit(signature)
            stem = key
        signature = _signature(item)
        if signature in open_groups:
            members = open_groups[signature][1]
            if len(members) >= grouping.max_turns or _dataset_chars(
                    [*(_text_of(record) for record in members), _text_of(item)]) > grouping.max_chars:
                yield emit(signature)
        if signature not in open_groups:
            open_groups[signature] = (opened.get(stem, 0), [])
            opened[stem] = open_groups[signature][0] + 1
        open_groups[signature][1].append(item)
    for signature in list(open_groups):
        yield emit(signature)


class VqaSource(Source):
    """An adapter whose items are questions on shared images: `group_questions: per_image` applies."""

    questions_on_shared_images: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        parse_grouping(options)

    def question_grouping(self, split: str) -> QuestionGrouping | None:
        """How the questions of `split` are grouped: None for one sample per question (the default, and always
        for the evaluation splits)."""
        if split not in GROUPED_SPLITS:
            return None
        try:
            return parse_grouping(self.options)
        except ValueError as err:
            raise SourceError(f"{self.name}: {err}") from err

    def image_units(self, split: str, items: Sequence[Any], image_of: Callable[[Any], str],
                    label: str = "") -> list[WorkUnit]:
        """`chunked_units`, except that under `group_questions: per_image` every question of an image lands in
        one unit: items sorted by `image_of(item)` (a string naming the image), then cut between images."""
        if self.question_grouping(split) is None:
            return self.chunked_units(split, items, label)
        size = int(self.options.get("items_per_unit", self.items_per_unit))
        prefix = f"{self.name}/{split}" + (f"/{label}" if label else "")
        return [WorkUnit(self.name, f"{prefix}/{index:05d}", split, tuple(chunk))
                for index, chunk in enumerate(cut_by_image(items, image_of, size))]

    def grouped_records(self, unit: WorkUnit, results: Iterable[Record | Rejection]) -> Iterator[Record | Rejection]:
        """An adapter's one-question results, merged per image under `group_questions: per_image`."""
        grouping = self.question_grouping(unit.split)
        if grouping is None:
            yield from results
            return
        yield from group_by_image(results, self.question_group, grouping, self.follow_up_question)

    def question_group(self, record: Record) -> str | None:
        """The id stem of the group a question joins: `<source>/<split>/image/<image key>`; None: on its own."""
        key = self.image_key(record)
        return f"{self.name}/{record.split}/image/{key}" if key else None

    def image_key(self, record: Record) -> str | None:
        """What names a question's image(s) in the dataset: by default the input images' paths, joined by "+"."""
        paths = [image.source_path for image in record.input_images]
        return "+".join(paths) if paths and all(paths) else None

    @staticmethod
    def follow_up_question(text: str) -> str:
        """A later question's human turn in a group: the image is placed in the first turn already."""
        return without_placeholders(text)
