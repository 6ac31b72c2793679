# ruff: noqa: RUF012 - asn1crypto declares its types with class-level lists it never mutates
"""ASN.1 types of ICAO 9303-10/-11/-12 and BSI TR-03110 that asn1crypto does not ship."""

from __future__ import annotations

from asn1crypto import algos, core, x509

ID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"  # eContentType of EF.SOD
ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"  # eContentType of an ICAO master list
ID_MASTER_LIST_SIGNING_KEY = "2.23.136.1.1.3"  # extended key usage of a master list signer
ID_AA_PROTOCOL = "2.23.136.1.1.5"  # ActiveAuthenticationInfo in DG14
ID_PACE = "0.4.0.127.0.7.2.2.4"
ID_PACE_ECDH_GM = ID_PACE + ".2"
ID_PACE_ECDH_GM_3DES = ID_PACE_ECDH_GM + ".1"
ID_PACE_ECDH_GM_AES_128 = ID_PACE_ECDH_GM + ".2"
ID_PACE_ECDH_GM_AES_192 = ID_PACE_ECDH_GM + ".3"
ID_PACE_ECDH_GM_AES_256 = ID_PACE_ECDH_GM + ".4"
# BSI TR-03111 ecdsa-plain-signatures: the hash is the last arc.
ECDSA_PLAIN = "0.4.0.127.0.7.1.1.4.1"
ECDSA_PLAIN_BY_HASH = {"sha1": ".1", "sha224": ".2", "sha256": ".3", "sha384": ".4", "sha512": ".5"}
# Standardized domain parameters of TR-03110-3 §A.2.1.1 that PACE here offers.
PARAM_NIST_P256 = 12
PARAM_BRAINPOOL_P256R1 = 13


class DataGroupHash(core.Sequence):
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class DataGroupHashValues(core.SequenceOf):
    _child_spec = DataGroupHash


class LDSVersionInfo(core.Sequence):
    _fields = [("lds_version", core.PrintableString), ("unicode_version", core.PrintableString)]


class LDSSecurityObject(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LDSVersionInfo, {"optional": True}),
    ]


class SecurityInfo(core.Sequence):
    # Every SecurityInfo (PACEInfo, ActiveAuthenticationInfo, ChipAuthenticationInfo...) is an OID
    # followed by one or two protocol-specific values.
    _fields = [
        ("protocol", core.ObjectIdentifier),
        ("required_data", core.Any),
        ("optional_data", core.Any, {"optional": True}),
    ]


class SecurityInfos(core.SetOf):
    _child_spec = SecurityInfo


class CertificateSet(core.SetOf):
    _child_spec = x509.Certificate


class CscaMasterList(core.Sequence):
    _fields = [("version", core.Integer), ("cert_list", CertificateSet)]
