//! What the harvest service proposes for a held position (`harvest_action`), read exactly:
//! the heat gate's input and the rungs of its configured ladder.

use crate::plan::CloseKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the harvest service proposes for a held position.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HarvestAction {
    /// Close a share of the position (or all of it).
    Close(CloseKind),
    /// Move the stop-loss.
    UpdateSl,
    /// Keep the position as it is.
    Hold,
}

impl HarvestAction {
    /// Every action, in ladder order (largest close first).
    pub const ALL: [HarvestAction; 6] = [
        HarvestAction::Close(CloseKind::Full),
        HarvestAction::Close(CloseKind::Partial75),
        HarvestAction::Close(CloseKind::Partial50),
        HarvestAction::Close(CloseKind::Partial25),
        HarvestAction::UpdateSl,
        HarvestAction::Hold,
    ];

    /// The contract's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            HarvestAction::Close(CloseKind::Full) => "FULL_CLOSE_PROPOSED",
            HarvestAction::Close(CloseKind::Partial75) => "PARTIAL_75",
            HarvestAction::Close(CloseKind::Partial50) => "PARTIAL_50",
            HarvestAction::Close(CloseKind::Partial25) => "PARTIAL_25",
            HarvestAction::UpdateSl => "UPDATE_SL",
            HarvestAction::Hold => "HOLD",
        }
    }

    /// Parses a contract name exactly; anything else is an error listing what is allowed.
    pub fn parse(raw: &str) -> Result<Self, String> {
        HarvestAction::ALL
            .into_iter()
            .find(|a| a.as_str() == raw)
            .ok_or_else(|| {
                "unknown harvest action; expected FULL_CLOSE_PROPOSED, PARTIAL_75, PARTIAL_50, \
                 PARTIAL_25, UPDATE_SL or HOLD"
                    .to_owned()
            })
    }

    /// The share of the position this action closes (0 for UPDATE_SL and HOLD).
    pub fn close_fraction(self) -> f64 {
        match self {
            HarvestAction::Close(kind) => kind.fraction(),
            HarvestAction::UpdateSl | HarvestAction::Hold => 0.0,
        }
    }
}

impl fmt::Display for HarvestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HarvestAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HarvestAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        HarvestAction::parse(&raw).map_err(serde::de::Error::custom)
    }
}
