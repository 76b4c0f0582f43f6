//! skyplan facade
