//! Hostile and heavy input: every input bounded where it enters, nothing accepted that cannot
//! be read back, nothing leaked (issue 12's campaign, turned into tests).

mod anonymous;
mod crash;
mod forms;
mod leaks;
mod logins;
mod records;
mod store_faults;
