//! Collects every error of one macro call, so users see them all in one compile.

/// The errors so far, combined into one `syn::Error` (one `compile_error!` each).
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records one more error.
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// `Err` with every recorded error, if any.
    pub fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}
