//! Typed indices into a shard's columns and the engine's instance registry: a leaf.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(pub(crate) u32);
        impl $name {
            pub(crate) fn idx(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A row of a shard.
    RowIdx
);
id_type!(
    /// A device of a shard. Devices are never removed (bindings last as long as the store).
    DeviceIdx
);
id_type!(
    /// An interned (job, firmware, product name, module, src, dest) tuple of a shard.
    VariantId
);
id_type!(
    /// A platform instance of the engine; 0 is the default instance.
    InstanceId
);

impl InstanceId {
    /// No instance: a removed device's slot.
    pub(crate) const FREE: InstanceId = InstanceId(u32::MAX);
}
