"""A fake OpenAI-compatible `/chat/completions` server on 127.0.0.1 with scripted replies, for the CAG tests.

`script(step, text)` returns the reply text for a request (or an int: that HTTP status). The step is read
from the request's prompt: the fuse prompt names the STRUCTURED DESCRIPTION, the plan prompt the
"medical image generator", anything else is the describe prompt. Every request body is kept in
`requests` so a test can assert what was sent. The server thread is a daemon and `close()` stops it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def step_of(text: str) -> str:
    if "STRUCTURED DESCRIPTION" in text:
        return "fuse"
    if "You are a medical image generator for" in text:
        return "plan"
    return "describe"


class FakeChatServer:
    def __init__(self, script):
        self.script, self.requests = script, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = "".join(part.get("text", "") for part in body["messages"][-1]["content"])
                step = step_of(text)
                server.requests.append({"step": step, "body": body, "text": text})
                reply = server.script(step, text)
                if isinstance(reply, int):
                    self.send_response(reply)
                    self.end_headers()
                    return
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def count(self, step: str | None = None) -> int:
        return sum(1 for r in self.requests if step is None or r["step"] == step)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# Replies that pass every rule, for a chest X-ray whose caption is CAPTION (NOTES.md's examples).
CAPTION = "PA chest radiograph: 3 cm well-circumscribed nodule in the left upper lobe; small left pleural effusion."
DESCRIPTION = (
    "This is a frontal chest X-ray of an adult thorax, a diagnostic radiograph. The thoracic cage, both lungs, "
    "the mediastinum and the upper abdomen are included in the field. The bones and soft tissues are symmetric. "
    "The trachea is midline and the carina is at the expected level. The cardiac silhouette has a normal size and "
    "contour. The aortic knob is unremarkable. Both hila are of normal size and position. The right lung is clear. "
    "In the left upper zone there is a rounded opacity about three centimetres across with smooth margins. "
    "The costophrenic angles are sharp. The hemidiaphragms are smooth and domed. There are no lines or tubes. "
    "The rounded opacity in the left upper zone is the only special finding.")
FUSED = (
    "Please generate a realistic chest X-ray image showing a posteroanterior frontal radiograph of an adult chest, "
    "with the thoracic cage, both lungs and the mediastinum in the field; the trachea is midline and the cardiac "
    "silhouette is of normal size; the right lung is clear; in the left upper lobe there is a 3 cm well-circumscribed "
    "rounded nodule with smooth margins; a small left pleural effusion blunts the left costophrenic angle.")
FUSE = FUSED + "\nAbnormalities added from the original caption: small left pleural effusion"
PLAN = (
    "<think>\n"
    "1) Key pathological process: a solitary well-circumscribed pulmonary nodule with a small pleural effusion.\n"
    "2) Anatomical structures: adult thorax in PA projection, both lungs, mediastinum, the left upper lobe and the "
    "left costophrenic angle.\n"
    "3) chest X-ray imaging characteristics: a 3 cm round soft-tissue density with sharp margins projected over the "
    "left upper lobe, a meniscus of fluid density blunting the left costophrenic angle, normal bone density.\n"
    "Structured caption: a PA chest X-ray with a 3 cm well-circumscribed left upper lobe nodule and a small left "
    "pleural effusion.\n"
    "</think>\n"
    "Here is the generated chest X-ray image that displays:\n"
    "- a 3 cm well-circumscribed nodule in the left upper lobe\n"
    "- a small left pleural effusion blunting the left costophrenic angle\n"
    "- a midline trachea and a normal-sized cardiac silhouette")
