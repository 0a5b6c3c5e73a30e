//! Protocol data units (RFC 3416 §3, RFC 1157 §4.1.6 for the v1 Trap-PDU) and their parts.

use std::fmt;

use crate::oid::Oid;
use crate::value::Value;

/// One variable binding: a name and its value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct VarBind {
    pub oid: Oid,
    pub value: Value,
}

impl VarBind {
    pub fn new(oid: Oid, value: Value) -> VarBind {
        VarBind { oid, value }
    }

    /// A request varbind: `oid` with the unSpecified (NULL) value.
    pub fn null(oid: Oid) -> VarBind {
        VarBind { oid, value: Value::Null }
    }
}

/// The error-status codes of RFC 3416 §3 (0..=5 are also SNMPv1's).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum ErrorStatus {
    NoError = 0,
    TooBig = 1,
    NoSuchName = 2,
    BadValue = 3,
    ReadOnly = 4,
    GenErr = 5,
    NoAccess = 6,
    WrongType = 7,
    WrongLength = 8,
    WrongEncoding = 9,
    WrongValue = 10,
    NoCreation = 11,
    InconsistentValue = 12,
    ResourceUnavailable = 13,
    CommitFailed = 14,
    UndoFailed = 15,
    AuthorizationError = 16,
    NotWritable = 17,
    InconsistentName = 18,
}

impl ErrorStatus {
    /// The status for a wire code, or `None` for codes RFC 3416 does not define.
    pub fn from_code(code: u32) -> Option<ErrorStatus> {
        use ErrorStatus::*;
        Some(match code {
            0 => NoError,
            1 => TooBig,
            2 => NoSuchName,
            3 => BadValue,
            4 => ReadOnly,
            5 => GenErr,
            6 => NoAccess,
            7 => WrongType,
            8 => WrongLength,
            9 => WrongEncoding,
            10 => WrongValue,
            11 => NoCreation,
            12 => InconsistentValue,
            13 => ResourceUnavailable,
            14 => CommitFailed,
            15 => UndoFailed,
            16 => AuthorizationError,
            17 => NotWritable,
            18 => InconsistentName,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The SNMPv1 status an SNMPv2 status is reported as (RFC 3584 §4.4).
    pub fn to_v1(self) -> ErrorStatus {
        use ErrorStatus::*;
        match self {
            NoError | TooBig | NoSuchName | BadValue | ReadOnly | GenErr => self,
            WrongValue | WrongEncoding | WrongType | WrongLength | InconsistentValue => BadValue,
            NoAccess | NotWritable | NoCreation | InconsistentName | AuthorizationError => NoSuchName,
            ResourceUnavailable | CommitFailed | UndoFailed => GenErr,
        }
    }

    /// The RFC 3416 name, e.g. `"notWritable"`.
    pub fn name(self) -> &'static str {
        use ErrorStatus::*;
        match self {
            NoError => "noError",
            TooBig => "tooBig",
            NoSuchName => "noSuchName",
            BadValue => "badValue",
            ReadOnly => "readOnly",
            GenErr => "genErr",
            NoAccess => "noAccess",
            WrongType => "wrongType",
            WrongLength => "wrongLength",
            WrongEncoding => "wrongEncoding",
            WrongValue => "wrongValue",
            NoCreation => "noCreation",
            InconsistentValue => "inconsistentValue",
            ResourceUnavailable => "resourceUnavailable",
            CommitFailed => "commitFailed",
            UndoFailed => "undoFailed",
            AuthorizationError => "authorizationError",
            NotWritable => "notWritable",
            InconsistentName => "inconsistentName",
        }
    }
}

impl fmt::Display for ErrorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The common PDU shape: Get, GetNext, Set, Response, InformRequest, SNMPv2-Trap and Report.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GenericPdu {
    pub request_id: i32,
    pub error_status: ErrorStatus,
    /// 1-based varbind index of the error, 0 when none.
    pub error_index: u32,
    pub varbinds: Vec<VarBind>,
}

impl GenericPdu {
    /// A request PDU (no error) carrying `varbinds`.
    pub fn request(request_id: i32, varbinds: Vec<VarBind>) -> GenericPdu {
        GenericPdu { request_id, error_status: ErrorStatus::NoError, error_index: 0, varbinds }
    }
}

/// GetBulkRequest-PDU (RFC 3416 §4.2.3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BulkPdu {
    pub request_id: i32,
    pub non_repeaters: u32,
    pub max_repetitions: u32,
    pub varbinds: Vec<VarBind>,
}

/// SNMPv1 Trap-PDU (RFC 1157 §4.1.6).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TrapV1Pdu {
    pub enterprise: Oid,
    pub agent_addr: [u8; 4],
    /// coldStart(0) .. enterpriseSpecific(6).
    pub generic_trap: u32,
    pub specific_trap: u32,
    /// sysUpTime at the time of the trap, in hundredths of a second.
    pub timestamp: u32,
    pub varbinds: Vec<VarBind>,
}

/// Any PDU of SNMPv1 or SNMPv2c.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Pdu {
    Get(GenericPdu),
    GetNext(GenericPdu),
    Response(GenericPdu),
    Set(GenericPdu),
    TrapV1(TrapV1Pdu),
    GetBulk(BulkPdu),
    Inform(GenericPdu),
    TrapV2(GenericPdu),
    Report(GenericPdu),
}

impl Pdu {
    /// The context-specific constructed tag byte of this PDU (0xA0..=0xA8).
    pub fn tag(&self) -> u8 {
        0xA0 | match self {
            Pdu::Get(_) => 0,
            Pdu::GetNext(_) => 1,
            Pdu::Response(_) => 2,
            Pdu::Set(_) => 3,
            Pdu::TrapV1(_) => 4,
            Pdu::GetBulk(_) => 5,
            Pdu::Inform(_) => 6,
            Pdu::TrapV2(_) => 7,
            Pdu::Report(_) => 8,
        }
    }

    /// The PDU type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Pdu::Get(_) => "GetRequest",
            Pdu::GetNext(_) => "GetNextRequest",
            Pdu::Response(_) => "Response",
            Pdu::Set(_) => "SetRequest",
            Pdu::TrapV1(_) => "Trap",
            Pdu::GetBulk(_) => "GetBulkRequest",
            Pdu::Inform(_) => "InformRequest",
            Pdu::TrapV2(_) => "SNMPv2-Trap",
            Pdu::Report(_) => "Report",
        }
    }

    /// The request-id (the v1 Trap-PDU has none).
    pub fn request_id(&self) -> Option<i32> {
        match self {
            Pdu::Get(p)
            | Pdu::GetNext(p)
            | Pdu::Response(p)
            | Pdu::Set(p)
            | Pdu::Inform(p)
            | Pdu::TrapV2(p)
            | Pdu::Report(p) => Some(p.request_id),
            Pdu::GetBulk(p) => Some(p.request_id),
            Pdu::TrapV1(_) => None,
        }
    }

    /// The variable bindings.
    pub fn varbinds(&self) -> &[VarBind] {
        match self {
            Pdu::Get(p)
            | Pdu::GetNext(p)
            | Pdu::Response(p)
            | Pdu::Set(p)
            | Pdu::Inform(p)
            | Pdu::TrapV2(p)
            | Pdu::Report(p) => &p.varbinds,
            Pdu::GetBulk(p) => &p.varbinds,
            Pdu::TrapV1(p) => &p.varbinds,
        }
    }
}
