"""MedDialog (English) sample tree: the unzipped `Medical-Dialogue-Dataset-English/` folder with two
healthcaremagic files and the icliniq file in the raw text layout (docs/sources/meddialog.md): a one-exchange
dialogue, an utterance over several lines, a multi-turn dialogue ending on the patient (trimmed to the last
doctor reply), a block without a Dialogue section, a block with no doctor reply, and text before the first id."""

from __future__ import annotations

from pathlib import Path

HCM_1 = """\
Medical Dialogue Dataset (English)

id=1
https://www.healthcaremagic.com/questions/Does-abutment-of-the-nerve-root-mean/1
Description
Q. What does abutment of the nerve root mean?
Dialogue
Patient:
Hi doctor, I am just wondering what is abutting and abutment of the nerve root means in a back issue.
Please explain. What treatment is required for annular bulging and tear?
Doctor:
Hi. I have gone through your query with diligence. Abutment means the disc is touching the nerve root.
Physiotherapy and pain relief are the first steps.

id=2
https://www.healthcaremagic.com/questions/Is-a-cough-after-a-cold-normal/2
Description
Q. Is a cough that lasts three weeks after a cold normal?
Dialogue
Patient:
I had a cold three weeks ago and the cough has not gone away. Should I worry?
Doctor:
A cough can last up to eight weeks after a viral infection. See a doctor if you have fever or blood in sputum.
Patient:
Thank you. Can I take honey for it?
Doctor:
Yes, honey soothes the throat and is safe in adults.
Patient:
Thanks a lot.

id=3
https://www.healthcaremagic.com/questions/broken-page/3
Description
Q. A page that lost its dialogue.

"""
HCM_2 = """\
id=1
https://www.healthcaremagic.com/questions/What-causes-ankle-swelling/4
Description
Q. What causes swelling of both ankles in the evening?
Dialogue
Patient:
Both my ankles swell every evening. I am 62 and take amlodipine.
Doctor:
Amlodipine often causes ankle swelling. Please ask your doctor about changing the dose.

"""
ICLINIQ = """\
id=1
https://www.icliniq.com/qa/headache/why-do-i-get-headaches/1
Description
Q. Why do I get headaches every morning?
Dialogue
Patient:
Hello doctor, I wake up with a headache every morning.

id=2
https://www.icliniq.com/qa/skin/itchy-rash/2
Description
Q. Why is my rash itchy at night?
Dialogue
Patient:
Hello doctor, I have an itchy rash on my arms that is worse at night.
Doctor:
Hi. It may be eczema or scabies. A moisturiser and a visit to a dermatologist are advised.

"""


def write(root: Path) -> Path:
    base = Path(root) / "Medical-Dialogue-Dataset-English"
    base.mkdir(parents=True, exist_ok=True)
    for name, text in (("healthcaremagic_dialogue_1.txt", HCM_1), ("healthcaremagic_dialogue_2.txt", HCM_2),
                       ("icliniq_dialogue.txt", ICLINIQ)):
        (base / name).write_text(text, encoding="utf-8")
    return base
