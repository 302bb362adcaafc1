"""An aiosmtpd handler that writes each received message to a directory as JSON.

Started by tests/src/smtp.rs as
    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink DIR
(with this directory on PYTHONPATH). Each message becomes DIR/<n>.json with its envelope
(sender, recipients), its headers of interest and its decoded text and HTML parts; files
appear atomically (written to a .tmp name, then renamed).
"""

import email
import email.policy
import itertools
import json
import os


class Sink:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.counter = itertools.count(1)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_sink.Sink takes one argument: the directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        n = next(self.counter)
        path = os.path.join(self.directory, f"{os.getpid()}-{n:06}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"
