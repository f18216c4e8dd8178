//! The `limits { }` section: how many pushes and sent codes one user may start
//! in a window, so that whoever holds a password cannot bomb its owner with
//! approval requests or text messages.

crate::section! {
    /// The items of the `limits { }` section.
    pub struct Limits {
        /// Pushes started for one user per window; 0: no limit.
        pushes: u32 = "5" [range(0, 1000, "pushes")],
        /// Codes sent by SMS or e-mail to one user per window; 0: no limit.
        codes_sent: u32 = "5" [range(0, 1000, "codes")],
        window: u32 = "900" [range(60, 86_400, "seconds")],
    }
}
