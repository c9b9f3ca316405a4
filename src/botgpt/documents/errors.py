"""Why a document could not be parsed: a stable `code` and a message the user can act on."""

from __future__ import annotations


class ParseError(Exception):
    """Base class of parse failures; ``code`` is stable, the message tells the user what to do."""

    code = "parse_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedTypeError(ParseError):
    """The content is not one of the supported types (the web layer answers 415)."""

    code = "unsupported_type"


class EncryptedDocumentError(ParseError):
    """The PDF is password protected."""

    code = "encrypted_pdf"


class CorruptDocumentError(ParseError):
    """The file is truncated or damaged."""

    code = "corrupt_file"


class NoExtractableTextError(ParseError):
    """The PDF holds only images (a scan): there is no text layer to read."""

    code = "no_extractable_text"


class UndecodableTextError(ParseError):
    """A text file that is not valid UTF-8 (or UTF-16/32 with a byte-order mark)."""

    code = "undecodable_text"


class EmptyDocumentError(ParseError):
    """The file parsed but contains no text at all."""

    code = "empty_document"
