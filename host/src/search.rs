//! Finding tools by what they do: BM25 over each tool's name, server,
//! description and input-schema text (the `bm25` crate's English
//! tokenizer: stemming, stop words). What code mode's `search_tools` and a
//! script's `searchTools` answer with, so a model reads a few matching
//! tools instead of every tool of every server.

use bm25::{Document, Language, SearchEngineBuilder};

use crate::gateway::ToolInfo;

/// The best matches for `query` among `tools`, best first, at most
/// `limit`; tools that share no word with the query are left out. An
/// empty query lists the first `limit` tools as given.
pub fn rank(tools: Vec<ToolInfo>, query: &str, limit: usize) -> Vec<ToolInfo> {
    if query.trim().is_empty() {
        return tools.into_iter().take(limit).collect();
    }
    let documents: Vec<Document<usize>> = tools
        .iter()
        .enumerate()
        .map(|(i, t)| Document::new(i, searchable_text(t)))
        .collect();
    let engine = SearchEngineBuilder::<usize>::with_documents(Language::English, documents).build();
    let mut slots: Vec<Option<ToolInfo>> = tools.into_iter().map(Some).collect();
    engine
        .search(&split_words(query), limit)
        .into_iter()
        .filter(|hit| hit.score > 0.0)
        .filter_map(|hit| slots.get_mut(hit.document.id).and_then(Option::take))
        .collect()
}

/// What a tool is found by. The name counts twice: it is the best short
/// statement of what a tool does.
fn searchable_text(tool: &ToolInfo) -> String {
    let name = split_words(&tool.name);
    let mut text = format!(
        "{name} {name} {} {}",
        split_words(&tool.server),
        tool.description.as_deref().unwrap_or("")
    );
    if let Ok(schema) = serde_json::from_str::<serde_json::Value>(&tool.input_schema) {
        schema_words(&schema, &mut text, 0);
    }
    text
}

/// Property names and descriptions of a schema, a few levels deep.
fn schema_words(schema: &serde_json::Value, out: &mut String, depth: usize) {
    if depth > 3 {
        return;
    }
    let Some(object) = schema.as_object() else {
        return;
    };
    if let Some(description) = object.get("description").and_then(|d| d.as_str()) {
        out.push(' ');
        out.push_str(description);
    }
    if let Some(properties) = object.get("properties").and_then(|p| p.as_object()) {
        for (name, property) in properties {
            out.push(' ');
            out.push_str(&split_words(name));
            schema_words(property, out, depth + 1);
        }
    }
    if let Some(items) = object.get("items") {
        schema_words(items, out, depth + 1);
    }
}

/// `read_text_file`, `readTextFile` and `read-text-file` as words.
fn split_words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' || c == '/' {
            out.push(' ');
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(server: &str, name: &str, description: &str, schema: &str) -> ToolInfo {
        ToolInfo {
            server: server.into(),
            name: name.into(),
            description: Some(description.into()),
            input_schema: schema.into(),
            output_schema: None,
        }
    }

    fn names(found: &[ToolInfo]) -> Vec<&str> {
        found.iter().map(|t| t.name.as_str()).collect()
    }

    fn catalog() -> Vec<ToolInfo> {
        vec![
            tool(
                "time",
                "get_current_time",
                "Get the current time in a timezone",
                r#"{"properties":{"timezone":{"type":"string"}}}"#,
            ),
            tool(
                "fs",
                "read_text_file",
                "Read the complete contents of a file as text",
                r#"{"properties":{"path":{"type":"string"}}}"#,
            ),
            tool(
                "fs",
                "list_directory",
                "Get a listing of all files and directories in a path",
                r#"{"properties":{"path":{}}}"#,
            ),
            tool(
                "fs",
                "write_file",
                "Create a new file or overwrite one",
                r#"{"properties":{"path":{},"content":{}}}"#,
            ),
            tool(
                "everything",
                "echo",
                "Echoes back the input",
                r#"{"properties":{"message":{"description":"Message to echo"}}}"#,
            ),
        ]
    }

    /// The words of a request find the tool that does it, ahead of tools
    /// that only share a word.
    #[test]
    fn ranks_by_meaning_words() {
        let found = rank(catalog(), "read a file", 3);
        assert_eq!(
            found.first().map(|t| t.name.as_str()),
            Some("read_text_file")
        );
        let found = rank(catalog(), "what time is it in Tokyo (timezone)", 2);
        assert_eq!(names(&found), ["get_current_time"]);
        // Stemming: "listing directories" finds list_directory.
        let found = rank(catalog(), "listing directories", 1);
        assert_eq!(names(&found), ["list_directory"]);
    }

    /// Nothing shared: nothing found (not the first tools by accident).
    #[test]
    fn unrelated_query_finds_nothing() {
        assert!(rank(catalog(), "quaternion", 5).is_empty());
    }

    #[test]
    fn limit_and_empty_query() {
        assert_eq!(rank(catalog(), "file", 2).len(), 2);
        assert_eq!(rank(catalog(), "  ", 2).len(), 2);
        assert!(rank(Vec::new(), "file", 2).is_empty());
    }

    #[test]
    fn splits_names_into_words() {
        assert_eq!(split_words("read_text_file"), "read text file");
        assert_eq!(split_words("readTextFile"), "read Text File");
        assert_eq!(split_words("server-filesystem"), "server filesystem");
    }
}
