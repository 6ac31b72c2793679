"""What the R30x driver raises: one exception class per confirmation code, plus link-level failures.

All are :class:`~drivers.interfaces.DeviceError`, so anything that escapes the driver makes the
engine fail safe. Codes that are a normal answer to a particular command (no finger for GenImg,
no match for Match, not found for Search) are turned into results by the client instead.
"""

from __future__ import annotations

from drivers.fingerprint.commands import Confirmation, Instruction, describe
from drivers.interfaces import DeviceError


class R30xError(DeviceError):
    """Base of every failure the R30x driver reports."""


class ResponseTimeout(R30xError):
    """The module did not answer in time (unpowered, wrong baud rate or address, wrong port)."""


class ProtocolViolation(R30xError):
    """The module answered with something the protocol does not allow at this point."""


class ConfirmationError(R30xError):
    """The module refused or failed a command; ``code`` is its confirmation code."""

    def __init__(self, device: str, instruction: Instruction, code: int) -> None:
        super().__init__(device, f"{instruction.name} failed: {describe(code)} (code 0x{code:02X})")
        self.instruction = instruction
        self.code = code


class PacketReceiveError(ConfirmationError):
    pass


class NoFingerError(ConfirmationError):
    pass


class PoorCaptureError(ConfirmationError):
    """The finger was there but its image is unusable: ask the traveller to place it again."""


class ImageCaptureError(PoorCaptureError):
    pass


class ImageMessyError(PoorCaptureError):
    pass


class TooFewFeaturesError(PoorCaptureError):
    pass


class NoValidImageError(PoorCaptureError):
    pass


class NoMatchError(ConfirmationError):
    pass


class NotFoundError(ConfirmationError):
    pass


class MergeError(ConfirmationError):
    """RegModel: the two captures are not of the same finger (or too poor to combine)."""


class BadLocationError(ConfirmationError):
    pass


class TemplateReadError(ConfirmationError):
    pass


class UploadFeatureError(ConfirmationError):
    pass


class DataReceiveError(ConfirmationError):
    pass


class UploadImageError(ConfirmationError):
    pass


class DeleteError(ConfirmationError):
    pass


class ClearError(ConfirmationError):
    pass


class WrongPasswordError(ConfirmationError):
    """The configured password is not the module's: a configuration fault, not a transient one."""


class FlashError(ConfirmationError):
    pass


class UndefinedModuleError(ConfirmationError):
    pass


class InvalidRegisterError(ConfirmationError):
    pass


class RegisterConfigError(ConfirmationError):
    pass


class BadNotepadPageError(ConfirmationError):
    pass


class PortError(ConfirmationError):
    pass


class AddressError(ConfirmationError):
    pass


class PasswordRequiredError(ConfirmationError):
    pass


ERRORS: dict[Confirmation, type[ConfirmationError]] = {
    Confirmation.PACKET_RECEIVE_ERROR: PacketReceiveError,
    Confirmation.NO_FINGER: NoFingerError,
    Confirmation.IMAGE_FAIL: ImageCaptureError,
    Confirmation.IMAGE_MESSY: ImageMessyError,
    Confirmation.TOO_FEW_FEATURES: TooFewFeaturesError,
    Confirmation.NO_MATCH: NoMatchError,
    Confirmation.NOT_FOUND: NotFoundError,
    Confirmation.MERGE_FAIL: MergeError,
    Confirmation.BAD_LOCATION: BadLocationError,
    Confirmation.TEMPLATE_READ_ERROR: TemplateReadError,
    Confirmation.UPLOAD_FEATURE_FAIL: UploadFeatureError,
    Confirmation.DATA_RECEIVE_FAIL: DataReceiveError,
    Confirmation.UPLOAD_IMAGE_FAIL: UploadImageError,
    Confirmation.DELETE_FAIL: DeleteError,
    Confirmation.CLEAR_FAIL: ClearError,
    Confirmation.WRONG_PASSWORD: WrongPasswordError,
    Confirmation.NO_VALID_IMAGE: NoValidImageError,
    Confirmation.FLASH_ERROR: FlashError,
    Confirmation.UNDEFINED_ERROR: UndefinedModuleError,
    Confirmation.INVALID_REGISTER: InvalidRegisterError,
    Confirmation.REGISTER_CONFIG_ERROR: RegisterConfigError,
    Confirmation.BAD_NOTEPAD_PAGE: BadNotepadPageError,
    Confirmation.PORT_ERROR: PortError,
    Confirmation.ADDRESS_ERROR: AddressError,
    Confirmation.PASSWORD_REQUIRED: PasswordRequiredError,
}


def confirmation_error(device: str, instruction: Instruction, code: int) -> ConfirmationError:
    """The exception for a confirmation code; unknown codes get the generic class."""
    try:
        cls = ERRORS[Confirmation(code)]
    except (ValueError, KeyError):
        cls = ConfirmationError
    return cls(device, instruction, code)
