//! How 2.x grows: optional capabilities, found by name and checked by layout.
//!
//! The types of 2.0 ([`crate::PluginMod`], [`crate::Worker`], [`crate::EventSink`],
//! [`crate::HostApi`]) are frozen for every 2.x release. A later minor adds a capability instead:
//!
//! 1. a `#[repr(C)]` table of `extern "C"` functions deriving `StableAbi`, whose first
//!    argument is the offering side's instance pointer;
//! 2. a name carrying the table's own major, e.g. `rbee.tokenize/1`, given by implementing
//!    [`Capability`] for the table.
//!
//! Either side offers capabilities by name: a worker through [`crate::Worker::extension`]
//! (plugin to host), the host through [`crate::HostApi::extension`] (host to plugin). The other
//! side asks by name and gets an [`ExtensionRef`]; [`ExtensionRef::get`] checks the table's
//! type layout against its own with abi_stable before handing out a typed table. A side that
//! does not know the name answers `RNone`, and a table whose layout differs is refused, so the
//! caller falls back to what 2.0 does. Nothing panics and nothing is guessed.
//!
//! A released table never changes; a different one gets a new name (`rbee.tokenize/2`).
//! Both sides list what they offer, plugin in [`crate::Manifest::capabilities`] and host in
//! [`crate::LoadRequest::host_capabilities`], for `rbee-host plugins inspect` and for logging.

use abi_stable::{
    StableAbi, abi_stability::abi_checking::check_layout_compatibility, type_layout::TypeLayout,
};
use std::fmt;

/// A capability's function table. Implement it for the `#[repr(C)]` table type.
///
/// # Safety
///
/// `NAME` must be unique to this table type: two types with one name would be read as each
/// other, past the layout check when their layouts agree.
pub unsafe trait Capability: StableAbi + Sync + 'static {
    /// The capability's name, with its major: `<owner>.<what>/<major>`.
    const NAME: &'static str;
}

/// A capability offered across the boundary: its table, the table's layout, and the instance
/// pointer its functions take first. Plain data; valid while the offering side lives (a worker
/// until the process ends, since libraries are never unloaded).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct ExtensionRef {
    layout: &'static TypeLayout,
    table: *const (),
    instance: *const (),
}

// SAFETY: the table is a `Sync` static, and the instance is a worker or host value that is
// itself `Send + Sync` (both traits require it) and outlives every use of the reference.
unsafe impl Send for ExtensionRef {}
// SAFETY: as above.
unsafe impl Sync for ExtensionRef {}

impl fmt::Debug for ExtensionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionRef").finish_non_exhaustive()
    }
}

impl ExtensionRef {
    /// Offers `table`, whose functions receive `instance` as their first argument. `instance`
    /// must stay valid for as long as the offering worker or host lives.
    pub fn new<T: Capability>(table: &'static T, instance: *const ()) -> Self {
        Self {
            layout: T::LAYOUT,
            table: (table as *const T).cast(),
            instance,
        }
    }

    /// The typed table, if its layout is the one this side was built with.
    pub fn get<T: Capability>(self) -> Result<Extension<T>, LayoutMismatch> {
        check_layout_compatibility(T::LAYOUT, self.layout).map_err(|errors| LayoutMismatch {
            capability: T::NAME,
            detail: errors
                .to_string()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        // SAFETY: abi_stable checked that the table has `T`'s layout, and it is a `'static`
        // table offered by `ExtensionRef::new::<T>`.
        let table = unsafe { &*self.table.cast::<T>() };
        Ok(Extension {
            table,
            instance: self.instance,
        })
    }
}

/// A checked capability: call its functions with [`Extension::instance`] first.
#[derive(Clone, Copy)]
pub struct Extension<T: 'static> {
    table: &'static T,
    instance: *const (),
}

impl<T> Extension<T> {
    /// The function table.
    pub fn table(&self) -> &'static T {
        self.table
    }

    /// The instance pointer the table's functions take first.
    pub fn instance(&self) -> *const () {
        self.instance
    }
}

/// Why an offered capability was not used: its table's layout differs from this side's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutMismatch {
    /// The capability's name.
    pub capability: &'static str,
    /// abi_stable's account, shortened.
    pub detail: String,
}

impl fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capability {} is offered with another table layout: {}",
            self.capability, self.detail
        )
    }
}

impl std::error::Error for LayoutMismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(StableAbi)]
    struct Twice {
        apply: extern "C" fn(*const (), u32) -> u32,
    }
    // SAFETY: a name only this test uses.
    unsafe impl Capability for Twice {
        const NAME: &'static str = "test.twice/1";
    }

    #[repr(C)]
    #[derive(StableAbi)]
    struct Other {
        apply: extern "C" fn(*const (), u64) -> u64,
    }
    // SAFETY: as above.
    unsafe impl Capability for Other {
        const NAME: &'static str = "test.twice/1";
    }

    extern "C" fn times(instance: *const (), x: u32) -> u32 {
        // SAFETY: the test offers a pointer to a u32.
        x * unsafe { *instance.cast::<u32>() }
    }

    static TWICE: Twice = Twice { apply: times };

    #[test]
    fn a_table_is_read_back_with_its_instance() {
        let factor = 2u32;
        let offered = ExtensionRef::new(&TWICE, (&factor as *const u32).cast());
        let twice = offered.get::<Twice>().unwrap();
        assert_eq!((twice.table().apply)(twice.instance(), 21), 42);
    }

    #[test]
    fn a_table_of_another_layout_is_refused_not_misread() {
        let offered = ExtensionRef::new(&TWICE, std::ptr::null());
        let error = offered.get::<Other>().err().expect("a layout mismatch");
        assert_eq!(error.capability, "test.twice/1");
    }
}
