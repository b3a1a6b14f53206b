//! `#[derive(Schema)]` for shmstore: an implementation of
//! `shmstore::Schema` that writes the type's schema (FORMAT.md, "Schema"):
//! its name, its fields or variants in declaration order, and each field's
//! type through that type's own `Schema`.
//!
//! The schema describes the type as rkyv 0.8 archives it (for a region)
//! and as `#[repr(C)]` lays it out (for a cell), which agree for plain
//! data. So the derive refuses what would make them differ from what it
//! writes: `#[repr(packed)]` or `#[repr(align)]` (on the type, or passed
//! to the archived type with `#[rkyv(attr(repr(..)))]`), fields archived
//! through a wrapper (`#[rkyv(with = ...)]`), types archived as another type
//! (`#[rkyv(as = ...)]`, `remote`), enum discriminants that are not
//! integer literals, and names that are not ASCII. A type it refuses can implement `Schema` by hand.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{
    Data, DeriveInput, Error, Expr, ExprLit, Fields, Lit, Meta, parse_macro_input, parse_quote,
    spanned::Spanned,
};

/// Derive `shmstore::Schema`. See the crate's docs for what it refuses.
#[proc_macro_derive(Schema)]
pub fn derive_schema(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(mut input: DeriveInput) -> Result<Tokens, Error> {
    check_attrs(&input.attrs, true)?;
    let name = &input.ident;
    let name_str = ascii(name)?;
    let body = match &input.data {
        Data::Struct(s) => {
            let fields = describe_fields(&s.fields)?;
            match &s.fields {
                // `struct S();` lies as `struct S;` does: `S{}`.
                Fields::Unnamed(u) if !u.unnamed.is_empty() => quote! {
                    d.begin_tuple_struct(#name_str);
                    #fields
                    d.end_items();
                },
                _ => quote! {
                    d.begin_struct(#name_str);
                    #fields
                    d.end_fields();
                },
            }
        }
        Data::Enum(e) => {
            if e.variants.is_empty() {
                return Err(Error::new(
                    name.span(),
                    "an enum without variants has no schema",
                ));
            }
            let mut next: u64 = 0;
            let mut arms = Tokens::new();
            for v in &e.variants {
                check_attrs(&v.attrs, false)?;
                let tag = match &v.discriminant {
                    None => next,
                    Some((
                        _,
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(i), ..
                        }),
                    )) => i.base10_parse::<u64>()?,
                    Some((_, other)) => {
                        return Err(Error::new(
                            other.span(),
                            "shmstore::Schema needs each discriminant as an integer literal",
                        ));
                    }
                };
                if tag > 255 {
                    return Err(Error::new(
                        v.span(),
                        "an archived enum's tag is a byte: 0 to 255",
                    ));
                }
                next = tag + 1;
                let tag = tag as u8;
                let vname = ascii(&v.ident)?;
                let fields = describe_fields(&v.fields)?;
                // A variant without fields is its tag alone, however written
                // (`A`, `A {}`, `A()`).
                arms.extend(if v.fields.is_empty() {
                    quote! { d.variant(#vname, #tag); }
                } else if let Fields::Named(_) = &v.fields {
                    quote! {
                        d.variant(#vname, #tag);
                        d.begin_named();
                        #fields
                        d.end_fields();
                    }
                } else {
                    quote! {
                        d.variant(#vname, #tag);
                        d.begin_items();
                        #fields
                        d.end_items();
                    }
                });
            }
            quote! {
                d.begin_enum(#name_str);
                #arms
                d.end_fields();
            }
        }
        Data::Union(u) => {
            return Err(Error::new(u.union_token.span(), "a union has no schema"));
        }
    };
    for p in input.generics.type_params_mut() {
        p.bounds.push(parse_quote!(::shmstore::Schema));
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::shmstore::Schema for #name #ty_generics #where_clause {
            fn describe(d: &mut ::shmstore::schema::Describer) {
                #body
            }
        }
    })
}

/// The name as the schema writes it: without `r#`, and ASCII only (the
/// grammar's names are).
fn ascii(ident: &syn::Ident) -> Result<String, Error> {
    let s = ident.to_string();
    let s = s.strip_prefix("r#").map(str::to_owned).unwrap_or(s);
    if s.is_ascii() {
        Ok(s)
    } else {
        Err(Error::new(
            ident.span(),
            "a schema's names are ASCII: implement shmstore::Schema by hand to name it otherwise",
        ))
    }
}

fn describe_fields(fields: &Fields) -> Result<Tokens, Error> {
    let mut out = Tokens::new();
    for f in fields {
        check_attrs(&f.attrs, false)?;
        let ty = &f.ty;
        out.extend(match &f.ident {
            Some(ident) => {
                let n = ascii(ident)?;
                quote! { d.field(#n); d.nested::<#ty>(); }
            }
            None => quote! { d.item(); d.nested::<#ty>(); },
        });
    }
    Ok(out)
}

/// Refuse what would make the layout differ from what the schema says.
fn check_attrs(attrs: &[syn::Attribute], container: bool) -> Result<(), Error> {
    for a in attrs {
        if container && a.path().is_ident("repr") {
            let mut bad = None;
            a.parse_nested_meta(|m| {
                if m.path.is_ident("packed") || m.path.is_ident("align") {
                    bad = Some(m.path.span());
                }
                // Skip any arguments (`packed(2)`, `align(8)`).
                if m.input.peek(syn::token::Paren) {
                    let _: Tokens = m.input.parse::<proc_macro2::Group>()?.stream();
                }
                Ok(())
            })?;
            if let Some(span) = bad {
                return Err(Error::new(
                    span,
                    "shmstore::Schema describes repr(C) layouts: packed and align change them",
                ));
            }
        }
        if a.path().is_ident("rkyv")
            && let Meta::List(list) = &a.meta
        {
            let text = list.tokens.to_string();
            // `attr(repr(..))` passes a repr to the archived type.
            for word in ["with", "as", "remote", "niche", "repr"] {
                if text
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == word)
                {
                    return Err(Error::new(
                        a.span(),
                        format!(
                            "#[rkyv({word} ...)] archives another layout than the type's; \
                             implement shmstore::Schema by hand"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
