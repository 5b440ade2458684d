"""The one exception family of the project: every error we raise on purpose derives from `CdpError`."""


class CdpError(Exception):
    """Base class of errors the CDP raises on purpose, with a message that says how to fix them."""


class ConfigError(CdpError):
    """A configuration file or value is wrong; the message names the file, the key and the fix."""


class MissingSecretError(CdpError):
    """The HMAC secret that keys identifier hashes is not available."""


class LandingContractError(CdpError):
    """A landing file breaks the contract as a whole (wrong encoding, missing required columns)."""
