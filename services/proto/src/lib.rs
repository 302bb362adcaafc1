//! Generated code for Phoenix's gRPC contracts (`proto/phoenix/<domain>/v1`), one module per
//! package, plus the encoded descriptor set that feeds server reflection.

#![allow(clippy::all, missing_docs)]

/// Encoded `FileDescriptorSet` of every Phoenix proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/phoenix_descriptor.bin"));

macro_rules! domain_package {
    ($name:ident, $pkg:literal) => {
        #[doc = concat!("Package `", $pkg, "`.")]
        pub mod $name {
            pub mod v1 {
                tonic::include_proto!($pkg);
            }
        }
    };
}

domain_package!(auth, "phoenix.auth.v1");
domain_package!(users, "phoenix.users.v1");
domain_package!(education, "phoenix.education.v1");
domain_package!(facilities, "phoenix.facilities.v1");
domain_package!(activities, "phoenix.activities.v1");
domain_package!(active, "phoenix.active.v1");
domain_package!(schedule, "phoenix.schedule.v1");
domain_package!(iot, "phoenix.iot.v1");
domain_package!(feedback, "phoenix.feedback.v1");
domain_package!(config, "phoenix.config.v1");
domain_package!(audit, "phoenix.audit.v1");
