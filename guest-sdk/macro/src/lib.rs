//! The `#[agent]` attribute of `weir-guest`. Use it through `weir_guest::agent`.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type, parse_macro_input};

/// Marks a plugin's entry function: `fn NAME(input: String | &str) ->
/// Result<T, E>`. The function is kept as written; hidden items beside it
/// export it as the component's `run`.
#[proc_macro_attribute]
pub fn agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[agent] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    match expand(&func) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#func #err).into()
        }
    }
}

fn expand(func: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if let Some(t) = &sig.asyncness {
        return Err(syn::Error::new(
            t.span(),
            "an #[agent] function cannot be async: tool calls block until answered",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "an #[agent] function cannot be generic",
        ));
    }
    if matches!(sig.output, ReturnType::Default) {
        return Err(syn::Error::new(
            sig.span(),
            "an #[agent] function must return Result<T, E> (T: String, &str or serde_json::Value; E: Display)",
        ));
    }
    let mut inputs = sig.inputs.iter();
    let (Some(arg), None) = (inputs.next(), inputs.next()) else {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "an #[agent] function takes exactly one argument: the input (String or &str)",
        ));
    };
    let FnArg::Typed(arg) = arg else {
        return Err(syn::Error::new(
            arg.span(),
            "an #[agent] function cannot take self",
        ));
    };
    let by_ref = matches!(&*arg.ty, Type::Reference(_));
    let name = &sig.ident;
    let input = if by_ref {
        quote!(&input)
    } else {
        quote!(input)
    };
    let call = quote_spanned!(sig.output.span()=> ::weir_guest::__private::finish(#name(#input)));
    // Items beside the function, not in a module of their own, so that the
    // function is in scope under its own name.
    Ok(quote! {
        #func

        #[doc(hidden)]
        struct __WeirAgent;

        impl ::weir_guest::bindings::Guest for __WeirAgent {
            fn run(input: ::std::string::String) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                #call
            }
        }

        ::weir_guest::bindings::export!(__WeirAgent with_types_in ::weir_guest::bindings);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(code: &str) -> Result<String, String> {
        let func: ItemFn = syn::parse_str(code).expect("parses");
        expand(&func)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    /// Misuse is refused with a message that says what to write instead.
    #[test]
    fn rejects_misuse() {
        let cases = [
            (
                "async fn run(i: String) -> Result<String, String> { todo!() }",
                "cannot be async",
            ),
            (
                "fn run<T>(i: String) -> Result<String, String> { todo!() }",
                "cannot be generic",
            ),
            ("fn run(i: String) { }", "must return Result<T, E>"),
            (
                "fn run() -> Result<String, String> { todo!() }",
                "exactly one argument",
            ),
            (
                "fn run(a: String, b: String) -> Result<String, String> { todo!() }",
                "exactly one argument",
            ),
        ];
        for (code, want) in cases {
            let err = expand_str(code).expect_err(code);
            assert!(err.contains(want), "{code}: {err}");
        }
    }

    /// A well-formed function is kept and exported; `&str` inputs are
    /// passed by reference.
    #[test]
    fn expands_entry_points() {
        let owned = expand_str("fn go(i: String) -> Result<String, String> { Ok(i) }").expect("ok");
        assert!(
            owned.contains("fn go")
                && owned.contains("finish (go (input))")
                && owned.contains("export !"),
            "{owned}"
        );
        let borrowed =
            expand_str("fn go(i: &str) -> Result<String, String> { Ok(i.into()) }").expect("ok");
        assert!(borrowed.contains("finish (go (& input))"), "{borrowed}");
    }
}
