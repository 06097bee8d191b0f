//! The `#[agent]` attribute of `weir-guest`. Use it through `weir_guest::agent`.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type, parse_macro_input};

/// Marks a plugin's entry function: `fn NAME(input: String | &str) ->
/// Result<T, E>`. The function is kept as written; a hidden module exports
/// it as the component's `run`.
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
    let call =
        quote_spanned!(sig.output.span()=> ::weir_guest::__private::finish(super::#name(#input)));
    Ok(quote! {
        #func

        #[doc(hidden)]
        mod __weir_agent_export {
            struct Agent;

            impl ::weir_guest::bindings::Guest for Agent {
                fn run(input: ::std::string::String) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    #call
                }
            }

            ::weir_guest::bindings::export!(Agent with_types_in ::weir_guest::bindings);
        }
    })
}
