//! Network namespaces the tests create (DHCP and TFTP traffic never leaves them) and the
//! processes run in them: kindling-testkit's, shared with the other crates' tests.
#![allow(unused_imports)]

pub use kindling_testkit::{Netns, Proc, can_run, have, sh};
