//! The annotated function as the attribute reads it: attributes, visibility and signature
//! parsed, the body kept as tokens.
//!
//! The compiler re-runs every attribute on every build, incremental ones included, so the
//! expansion must not cost more than the function's size demands. Only the signature decides
//! what is generated; the body is re-emitted as written and parsed only when a quick scan finds
//! a token that one of the body checks is about (`yield`, `Self`).

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Signature, Visibility};

/// An `fn` item with its body unparsed.
pub struct FnItem {
    /// Outer attributes (doc comments included).
    pub attrs: Vec<Attribute>,
    /// `pub`, `pub(crate)`, ...
    pub vis: Visibility,
    /// Everything from `const`/`async`/`fn` to the where clause.
    pub sig: Signature,
    /// The `{ ... }` body, as written.
    pub body: Group,
}

/// Attributes, visibility and signature: everything before the body.
struct Head {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
}

impl Parse for Head {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Ok(Head {
            attrs: input.call(Attribute::parse_outer)?,
            vis: input.parse()?,
            sig: input.parse()?,
        })
    }
}

impl FnItem {
    /// Splits off the body (the last top-level token, a brace group) without looking inside
    /// it, then parses the rest. Anything else is parsed as a whole `fn` item so the error is
    /// syn's usual one for what is there.
    pub fn parse(item: TokenStream) -> syn::Result<Self> {
        let mut head: Vec<TokenTree> = item.clone().into_iter().collect();
        match head.pop() {
            Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => {
                let Head { attrs, vis, sig } = match syn::parse2(head.into_iter().collect()) {
                    Ok(h) => h,
                    Err(e) => return Err(syn::parse2::<syn::ItemFn>(item).err().unwrap_or(e)),
                };
                Ok(FnItem {
                    attrs,
                    vis,
                    sig,
                    body,
                })
            }
            _ => {
                syn::parse2::<syn::ItemFn>(item)?;
                Err(syn::Error::new(
                    proc_macro2::Span::call_site(),
                    "expected a function body",
                ))
            }
        }
    }

    /// The body's statements as tokens, without the braces.
    pub fn body_tokens(&self) -> TokenStream {
        self.body.stream()
    }

    /// The body parsed as a block, when a check found a candidate token in it; `None` if it
    /// does not parse (the compiler reports that on the re-emitted function).
    pub fn parse_block(&self) -> Option<Block> {
        syn::parse2(self.body.to_token_stream()).ok()
    }

    /// Whether `ident` occurs in the body outside macro calls (whose tokens syn does not
    /// parse either). A quick, conservative filter: nested items are not skipped, so a hit is
    /// confirmed on the parsed block.
    pub fn body_mentions(&self, ident: &str) -> bool {
        // One call for the whole text first: most bodies never name either token.
        self.body.to_string().contains(ident) && mentions(self.body.stream(), ident)
    }
}

fn mentions(tokens: TokenStream, ident: &str) -> bool {
    let mut prev_ident = false;
    let mut prev_bang_after_ident = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                if i == ident {
                    return true;
                }
                prev_ident = true;
                prev_bang_after_ident = false;
            }
            TokenTree::Punct(p) => {
                prev_bang_after_ident = prev_ident && p.as_char() == '!';
                prev_ident = false;
            }
            TokenTree::Group(g) => {
                // `name! { ... }`: a macro call's tokens are the macro's, not code.
                if !prev_bang_after_ident && mentions(g.stream(), ident) {
                    return true;
                }
                prev_ident = false;
                prev_bang_after_ident = false;
            }
            TokenTree::Literal(_) => {
                prev_ident = false;
                prev_bang_after_ident = false;
            }
        }
    }
    false
}

impl ToTokens for FnItem {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for a in &self.attrs {
            a.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.body.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn item(t: TokenStream) -> FnItem {
        FnItem::parse(t).expect("parses")
    }

    #[test]
    fn splits_the_signature_from_the_body() {
        let f = item(quote! {
            /// Doc
            pub async fn f(s: &S) -> impl Stream<Item = u8> where S: Sync { stream! { yield 1; } }
        });
        assert_eq!(f.attrs.len(), 1);
        assert_eq!(f.sig.ident, "f");
        assert!(f.sig.generics.where_clause.is_some());
        assert_eq!(
            f.body_tokens().to_string(),
            quote!(stream! { yield 1; }).to_string()
        );
    }

    #[test]
    fn macro_calls_are_not_scanned() {
        let f = item(quote!(
            async fn f() {
                stream! { yield 1; }
            }
        ));
        assert!(!f.body_mentions("yield"));
        let f = item(quote!(
            async fn f() {
                let x = 1;
                yield x;
            }
        ));
        assert!(f.body_mentions("yield"));
        let f = item(quote!(
            async fn f() {
                if true {
                    Self::g();
                }
            }
        ));
        assert!(f.body_mentions("Self"));
        assert!(!f.body_mentions("yield"));
    }

    #[test]
    fn a_non_function_gets_syns_error() {
        assert!(
            FnItem::parse(quote!(
                struct S;
            ))
            .is_err()
        );
        assert!(
            FnItem::parse(quote!(
                fn f();
            ))
            .is_err()
        );
        assert!(FnItem::parse(quote!(async fn f(x:) {})).is_err());
    }
}
