"""medical-o1-reasoning-SFT sample tree: the four JSON-list files of the HF repo and its README; the `en`
file has a Unicode row, a chain of thought with blank lines, a row without `Complex_CoT`, a row with an
empty `Response`, a row with lower-case keys (third-party copies) and a row that is not an object."""

from __future__ import annotations

import json
from pathlib import Path

EN = [
    {"Question": "A 45-year-old man has a haemoglobin of 6 g/dL and a reticulocyte count of 0.4% after a febrile "
                 "illness. What condition is most commonly associated with these findings?",
     "Complex_CoT": "Alright, the haemoglobin is very low and the reticulocytes are low too, so the marrow is not "
                    "responding.\n\nA febrile illness just before points to a virus that stops red cell production.",
     "Response": "Transient aplastic crisis caused by parvovirus B19, typically in a patient with chronic haemolysis."},
    {"Question": "Which nerve is at risk in a fracture of the surgical neck of the humerus — and what is lost?",
     "Complex_CoT": "The surgical neck is where the axillary nerve wraps around with the posterior circumflex "
                    "humeral artery. Its damage weakens the deltoid.",
     "Response": "The axillary nerve: abduction beyond 15° weakens and sensation over the regimental badge is lost."},
    {"Question": "What is the first-line treatment of absence seizures in children?",
     "Response": "Ethosuximide."},
    {"Question": "Which vitamin deficiency causes Wernicke encephalopathy?",
     "Complex_CoT": "Confusion, ophthalmoplegia and ataxia in an alcoholic patient.", "Response": "  "},
    {"question": "Which test confirms coeliac disease?", "complex_cot": "Serology first.", "response": "Biopsy."},
    "not an object",
]
ZH = [{"Question": "缺铁性贫血的典型血涂片表现是什么？", "Complex_CoT": "铁缺乏导致血红蛋白合成减少。",
       "Response": "小细胞低色素性红细胞。"}]
MIX = EN[:1] + [{"Question": "Write a haiku about autumn.", "Complex_CoT": "Five, seven, five syllables.",
                 "Response": "Leaves drift on cold wind / ..."}]


def _write(path: Path, rows: list) -> None:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")


def write(root: Path) -> Path:
    base = Path(root) / "medical-o1-reasoning-SFT"
    base.mkdir(parents=True, exist_ok=True)
    (base / "README.md").write_text("---\nlicense: apache-2.0\nconfigs:\n- config_name: en\n  data_files: "
                                    "medical_o1_sft.json\n---\n", encoding="utf-8")
    _write(base / "medical_o1_sft.json", EN)
    _write(base / "medical_o1_sft_Chinese.json", ZH)
    _write(base / "medical_o1_sft_mix.json", MIX)
    _write(base / "medical_o1_sft_mix_Chinese.json", ZH + MIX[1:])
    return base
