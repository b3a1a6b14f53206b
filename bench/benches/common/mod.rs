//! Helpers shared by the benches, one concept a module: criterion's results
//! and the tables made of them ([`report`]), segments, futexes and the
//! robust-mutex floor ([`sys`]), child processes and the futex ping-pong with
//! one ([`child`]), and the region value with its mmap-sync mirror
//! ([`values`]).
//!
//! Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod child;
pub mod report;
pub mod sys;
pub mod values;
