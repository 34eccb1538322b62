"""A parsed SCRIPT message: its Header (routing and correlation) and its Body's one
message element (NewRx, Status, CancelRx ...), read by element paths of local names.

Paths: `Header/MessageID`, `Body/NewRx/Patient/HumanPatient/Name/LastName`,
`NewRx/MedicationPrescribed/DrugCoded/ProductCode/Code` (a path not starting with
Header, Body or Message is read under the Body), and `Header/To@Qualifier` for an
attribute. The first match is read; `all` gives every one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

PATH = re.compile(r"^[A-Za-z][\w.-]*(?:/[A-Za-z][\w.-]*)*(?:@[A-Za-z][\w.-]*)?$")


@dataclass
class ScriptMessage:
    root: ET.Element  # Message, tags local
    namespace: str  # the root's XML namespace ("" when none)

    @property
    def header(self) -> ET.Element | None:
        return self.root.find("Header")

    @property
    def body(self) -> ET.Element | None:
        """The Body's message element (NewRx, Status ...)."""
        body = self.root.find("Body")
        return next(iter(body), None) if body is not None else None

    @property
    def message_type(self) -> str:
        body = self.body
        return body.tag if body is not None else ""

    @property
    def version(self) -> str:
        """The SCRIPT version the message declares (TransactionVersion, else version)."""
        attrs = self.root.attrib
        return (attrs.get("TransactionVersion") or attrs.get("version")
                or attrs.get("Version") or "")

    @property
    def is_10_6(self) -> bool:
        """A SCRIPT 10.6 message (version="010" release="006"): it names some elements
        otherwise than 2017071 (rules.IN_10_6)."""
        attrs = self.root.attrib
        return attrs.get("version") == "010" and attrs.get("release") == "006"

    def _where(self, path: str) -> tuple[ET.Element | None, str, str]:
        path, _, attribute = path.strip().partition("@")
        head = path.split("/", 1)[0]
        if head == "Message":
            return self.root, path.partition("/")[2], attribute
        if head in ("Header", "Body"):
            return self.root, path, attribute
        return self.root.find("Body"), path, attribute

    def find(self, path: str) -> ET.Element | None:
        base, rest, _ = self._where(path)
        if base is None:
            return None
        return base.find(rest) if rest else base

    def all(self, path: str) -> list[ET.Element]:
        base, rest, _ = self._where(path)
        if base is None:
            return []
        return base.findall(rest) if rest else [base]

    def value(self, path: str) -> str:
        """The text (or attribute) at a path, stripped; "" when absent."""
        base, rest, attribute = self._where(path)
        if base is None:
            return ""
        element = base.find(rest) if rest else base
        if element is None:
            return ""
        if attribute:
            return element.attrib.get(attribute, "").strip()
        return (element.text or "").strip()
