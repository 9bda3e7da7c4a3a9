//! Snapshots of the expanded output: the generated code stays small and reviewable.

use quote::quote;

fn pretty(tokens: proc_macro2::TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
    prettyplease::unparse(&file)
}

#[test]
fn stream_function() {
    let out = super::expand(
        quote!(
            route = "/stream/updates",
            method = "get",
            response = "stream",
            auth = false,
            tags = ["streaming"]
        ),
        quote! {
            /// Stream live updates
            async fn stream_updates(services: &Services, input: UpdatesQuery) -> impl Stream<Item = Update> {
                stream! { yield Update::default(); }
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn json_session_function_with_result() {
    let out = super::expand(
        quote!(route = "/users/{userId}/notifications", method = "post"),
        quote! {
            /// Publish a notification
            ///
            /// Sends it to every open stream of the user.
            pub async fn post_notification(services: &Services, input: NewNotification, session: &UserSession, ctx: &Context) -> Result<Published, PikkuError> {
                body()
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn either_function() {
    let out = super::expand(
        quote!(route = "/data", auth = false),
        quote! {
            async fn get_data(services: &Services, input: DataQuery) -> Reply<Snapshot, impl Stream<Item = Result<Event<Snapshot>, PikkuError>>> {
                body()
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn permissions_and_frames() {
    let out = super::expand(
        quote!(
            route = "/users/{userId}/notifications",
            response = "stream",
            permissions = [is_self, checks::active]
        ),
        quote! {
            async fn notifications(services: &Services, input: UserPath, session: &UserSession) -> Result<impl Stream<Item = Frame<Notification>>, PikkuError> {
                body()
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn json_function_with_permissions() {
    let out = super::expand(
        quote!(
            route = "/users/{userId}/notes",
            method = "post",
            permissions = [is_owner]
        ),
        quote! {
            async fn save_note(services: &Services, input: NoteIn, session: &UserSession) -> NoteOut {
                body()
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn bare_yield_is_an_error_with_the_rewrite_and_the_body_goes_into_stream() {
    let out = super::expand(
        quote!(route = "/ticks", response = "stream", auth = false),
        quote! {
            async fn ticks(services: &Services) -> impl Stream<Item = u32> {
                for n in 0..3 { yield n; }
                let nested = || { fn inner() {} };
            }
        },
    )
    .to_string();
    assert!(out.contains("compile_error"), "{out}");
    assert!(
        out.contains("help: build the stream in the body and return it"),
        "{out}"
    );
    assert!(out.contains(":: pikku :: stream !"), "{out}");
}

#[test]
fn yield_inside_stream_macros_is_fine() {
    let out = super::expand(
        quote!(route = "/ticks", response = "stream", auth = false),
        quote! {
            async fn ticks(services: &Services) -> impl Stream<Item = u32> {
                stream! { for n in 0..3 { yield n; } }
            }
        },
    )
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
}

#[test]
fn crate_path() {
    let out = super::expand(
        quote!(
            route = "/users/{userId}/data",
            permissions = [is_self],
            crate = "my_reexport::pikku"
        ),
        quote! {
            pub async fn get_data(services: &Services, input: UserPath, session: &UserSession) -> Result<Reply<Snapshot, impl Stream<Item = Result<Event<Snapshot>, PikkuError>>>, PikkuError> {
                body()
            }
        },
    );
    // Every path into the runtime goes through the re-export, none through `::pikku`.
    let text = out.to_string();
    let through_reexport = text.matches("my_reexport :: pikku ::").count();
    assert!(through_reexport > 0, "{text}");
    assert_eq!(
        text.matches(":: pikku ::").count(),
        through_reexport,
        "{text}"
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn crate_path_is_used_when_the_body_is_wrapped_in_stream() {
    let out = super::expand(
        quote!(
            route = "/ticks",
            response = "stream",
            auth = false,
            crate = "my_reexport::pikku"
        ),
        quote! {
            async fn ticks(services: &Services) -> impl Stream<Item = u32> {
                for n in 0..3 { yield n; }
            }
        },
    )
    .to_string();
    assert!(out.contains("my_reexport :: pikku :: stream !"), "{out}");
}

#[test]
fn crate_that_is_not_a_path_is_an_error() {
    let out = super::expand(
        quote!(route = "/x", auth = false, crate = "my reexport"),
        quote! {
            async fn x(services: &Services) -> u32 { 1 }
        },
    )
    .to_string();
    assert!(out.contains("`crate` takes the path"), "{out}");
}

#[test]
fn self_means_an_impl_block_and_nothing_is_emitted_but_the_function() {
    let out = super::expand(
        quote!(route = "/count", auth = false),
        quote! {
            async fn count(services: &Services) -> u32 { Self::helper() }
        },
    )
    .to_string();
    assert!(
        out.contains("functions in `impl` blocks are not supported"),
        "{out}"
    );
    assert!(!out.contains("struct count"), "{out}");
}

#[test]
fn self_in_a_nested_item_is_its_own() {
    let out = super::expand(
        quote!(route = "/count", auth = false),
        quote! {
            async fn count(services: &Services) -> u32 {
                struct Local;
                impl Local { fn new() -> Self { Local } }
                1
            }
        },
    )
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
}
