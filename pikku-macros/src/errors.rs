//! Collects every error of one macro call, so users see them all in one compile, in the order
//! of the code they are about.

/// The position of errors about anything after the attribute (the signature, the body).
pub const AFTER_ATTRIBUTE: usize = usize::MAX;

/// The errors so far, each with its position; reported as one `compile_error!` each.
pub struct Errors {
    all: Vec<(usize, syn::Error)>,
    position: usize,
}

impl Default for Errors {
    fn default() -> Self {
        Errors {
            all: Vec::new(),
            position: AFTER_ATTRIBUTE,
        }
    }
}

impl Errors {
    /// Errors pushed from now on sort at `position`: the index of the attribute's key they are
    /// about, or [`AFTER_ATTRIBUTE`]. Parsing and validation find a key's problems in separate
    /// passes; this reports them in the order the keys are written.
    pub fn at(&mut self, position: usize) {
        self.position = position;
    }

    /// Records one more error, at the current position.
    pub fn push(&mut self, e: syn::Error) {
        self.all.push((self.position, e));
    }

    /// `Err` with every recorded error, by position (in push order within one), if any.
    pub fn finish(mut self) -> Result<(), syn::Error> {
        self.all.sort_by_key(|(position, _)| *position);
        let mut all = self.all.into_iter().map(|(_, e)| e);
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(all);
                Err(first)
            }
        }
    }
}
