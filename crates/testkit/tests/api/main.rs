//! HTTP integration tests: the real server on port 0, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod audit;
mod auth;
mod backup;
mod calendar;
mod courses;
mod dosing;
mod eligibility;
mod health;
mod iv_session;
mod ledger;
mod mfa;
mod outcomes;
mod patients;
mod permissions;
mod portal_isolation;
mod psychotherapy_notes;
mod questionnaires;
mod reminders;
mod rems_forms;
mod scheduling;
mod session_forms;
mod session_pages;
mod sessions;
mod web_security;
