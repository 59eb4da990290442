//! Event-driven sync: WeCom `change_contact` callbacks and DingTalk org
//! events (HTTP push and Stream mode) keep the store current between full
//! syncs.
//!
//! A received event is verified, persisted in the store's inbox and
//! answered; it is applied later, through the same plan, safety and
//! transaction path as a full sync, by whichever replica claims it.

#![warn(missing_docs)]

pub mod apply;
