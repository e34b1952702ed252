//! ACK payload: a LIST-OF-ACTIONS (SPOE §3.2.7, §3.4).
//!
//! ```text
//! set-var   = 01 03 SCOPE:u8 NAME:(varint length, bytes) VALUE:TYPED-DATA
//! unset-var = 02 02 SCOPE:u8 NAME:(varint length, bytes)
//! ```
//!
//! The mirror answers with an empty list; actions exist so the codec is complete and so
//! shadow testing can later report results through variables.

use super::data::{put_bytes, Reader, TypedData};
use super::Error;
use bytes::{BufMut, Bytes};

const ACTION_SET_VAR: u8 = 1;
const ACTION_UNSET_VAR: u8 = 2;

/// Variable scope byte of set-var / unset-var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarScope {
    Proc,
    Sess,
    Txn,
    Req,
    Res,
    Other(u8),
}

impl VarScope {
    fn from_u8(b: u8) -> VarScope {
        match b {
            0 => VarScope::Proc,
            1 => VarScope::Sess,
            2 => VarScope::Txn,
            3 => VarScope::Req,
            4 => VarScope::Res,
            other => VarScope::Other(other),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            VarScope::Proc => 0,
            VarScope::Sess => 1,
            VarScope::Txn => 2,
            VarScope::Req => 3,
            VarScope::Res => 4,
            VarScope::Other(b) => b,
        }
    }
}

/// One action of an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetVar {
        scope: VarScope,
        name: Bytes,
        value: TypedData,
    },
    UnsetVar {
        scope: VarScope,
        name: Bytes,
    },
}

impl Action {
    pub fn decode_list(r: &mut Reader) -> Result<Vec<Action>, Error> {
        let mut actions = Vec::new();
        while !r.is_empty() {
            let kind = r.u8("action type")?;
            let nb_args = r.u8("action NB-ARGS")?;
            let action = match (kind, nb_args) {
                (ACTION_SET_VAR, 3) => {
                    let scope = VarScope::from_u8(r.u8("var scope")?);
                    let name = r.bytes("var name")?;
                    let value = TypedData::decode(r)?;
                    Action::SetVar { scope, name, value }
                }
                (ACTION_UNSET_VAR, 2) => {
                    let scope = VarScope::from_u8(r.u8("var scope")?);
                    let name = r.bytes("var name")?;
                    Action::UnsetVar { scope, name }
                }
                (kind, n) => return Err(Error::BadAction(kind, n)),
            };
            actions.push(action);
        }
        Ok(actions)
    }

    pub fn encode_list<B: BufMut>(actions: &[Action], dst: &mut B) {
        for action in actions {
            match action {
                Action::SetVar { scope, name, value } => {
                    dst.put_slice(&[ACTION_SET_VAR, 3, scope.to_u8()]);
                    put_bytes(name, dst);
                    value.encode(dst);
                }
                Action::UnsetVar { scope, name } => {
                    dst.put_slice(&[ACTION_UNSET_VAR, 2, scope.to_u8()]);
                    put_bytes(name, dst);
                }
            }
        }
    }
}
