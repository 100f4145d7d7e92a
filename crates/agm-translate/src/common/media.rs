//! Images, audio and files: `data:` URLs and raw base64 become `inlineData`, `http(s)`
//! URLs become `fileData` (Google fetches them).

use agm_wire::gemini::{Blob, FileData, Part};

use crate::error::TranslateError;

/// An inline-bytes part.
pub(crate) fn inline_part(mime_type: &str, base64: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: base64.to_owned(),
        }),
        ..Part::default()
    }
}

/// A file-URI part, its MIME type guessed from the URL (else `default_mime`).
pub(crate) fn file_uri_part(url: &str, default_mime: &str) -> Part {
    Part {
        file_data: Some(FileData {
            mime_type: Some(mime_from_url(url).unwrap_or(default_mime).to_owned()),
            file_uri: url.to_owned(),
        }),
        ..Part::default()
    }
}

/// A `data:<mime>;base64,<data>` URL split into its MIME type and base64 data; `None`
/// when `url` is not a data URL. A data URL that is not base64 is an error naming
/// `field`.
pub(crate) fn parse_data_url<'a>(
    url: &'a str,
    field: &str,
) -> Result<Option<(&'a str, &'a str)>, TranslateError> {
    let Some(rest) = strip_prefix_ignore_case(url.trim_start(), "data:") else {
        return Ok(None);
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(TranslateError::invalid(
            field,
            "malformed data URL (no comma before the data)",
        ));
    };
    let mut params = meta.split(';');
    let mime = params.next().unwrap_or_default().trim();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(TranslateError::invalid(
            field,
            "data URLs must be base64 (data:<type>;base64,<data>)",
        ));
    }
    let mime = if mime.is_empty() {
        "application/octet-stream"
    } else {
        mime
    };
    Ok(Some((mime, data.trim())))
}

/// An image (or other media) given by URL: a `data:` URL inline, an `http(s)` URL as
/// a file URI. Other schemes are an error naming `field`.
pub(crate) fn url_part(url: &str, default_mime: &str, field: &str) -> Result<Part, TranslateError> {
    if let Some((mime, data)) = parse_data_url(url, field)? {
        return Ok(inline_part(mime, data));
    }
    let trimmed = url.trim();
    if strip_prefix_ignore_case(trimmed, "https://").is_some()
        || strip_prefix_ignore_case(trimmed, "http://").is_some()
        || strip_prefix_ignore_case(trimmed, "gs://").is_some()
    {
        return Ok(file_uri_part(trimmed, default_mime));
    }
    Err(TranslateError::invalid(
        field,
        "must be an http(s) URL or a base64 data URL",
    ))
}

/// A file given as a `data:` URL or bare base64, its type from the data URL, else
/// from the file name, else `default_mime`.
pub(crate) fn file_data_part(
    file_data: &str,
    filename: Option<&str>,
    default_mime: &str,
    field: &str,
) -> Result<Part, TranslateError> {
    if let Some((mime, data)) = parse_data_url(file_data, field)? {
        return Ok(inline_part(mime, data));
    }
    let mime = filename.and_then(mime_from_url).unwrap_or(default_mime);
    Ok(inline_part(mime, file_data.trim()))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The MIME type suggested by a URL's (or file name's) extension.
pub(crate) fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_become_inline_data_and_web_urls_file_data() {
        let part = url_part("data:image/png;base64,iVBO", "image/jpeg", "f").unwrap();
        assert_eq!(
            part.inline_data,
            Some(Blob {
                mime_type: "image/png".into(),
                data: "iVBO".into()
            })
        );
        let part = url_part("https://e.com/cat.WEBP?x=1", "image/jpeg", "f").unwrap();
        assert_eq!(
            part.file_data,
            Some(FileData {
                mime_type: Some("image/webp".into()),
                file_uri: "https://e.com/cat.WEBP?x=1".into()
            })
        );
        let part = url_part("https://e.com/pic", "image/jpeg", "f").unwrap();
        assert_eq!(
            part.file_data.unwrap().mime_type.as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(
            url_part(
                "data:text/plain,hello",
                "image/jpeg",
                "messages.0.content.1"
            )
            .unwrap_err()
            .field(),
            "messages.0.content.1"
        );
        assert!(url_part("file:///etc/passwd", "image/jpeg", "f").is_err());
        assert!(url_part("data:image/png;base64", "image/jpeg", "f").is_err());
    }

    #[test]
    fn files_take_their_type_from_the_data_url_or_name() {
        let part = file_data_part("JVBE", Some("a.pdf"), "application/octet-stream", "f").unwrap();
        assert_eq!(part.inline_data.unwrap().mime_type, "application/pdf");
        let part =
            file_data_part("data:text/csv;base64,YQ==", None, "application/pdf", "f").unwrap();
        assert_eq!(part.inline_data.unwrap().mime_type, "text/csv");
    }
}
