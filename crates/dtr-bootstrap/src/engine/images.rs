//! Images as the offline bundle needs them: their IDs, one `docker save` stream of several,
//! and `docker load` of a stream.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{is_not_found, Engine};
use crate::error::{Error, Result};

impl Engine {
    /// The image ID (`sha256:<hex>`) a reference resolves to, or `None` when it does not.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::docker("inspect image", reference, e)),
        }
    }

    /// `docker save` of several references: one uncompressed tar stream, layers shared between
    /// the images written once.
    pub fn export_images(
        &self,
        references: &[String],
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let names: Vec<&str> = references.iter().map(String::as_str).collect();
        let object = references.join(" ");
        self.docker
            .export_images(&names)
            .map(move |chunk| chunk.map_err(|e| Error::docker("export images", object.clone(), e)))
    }

    /// `docker load` of a tar stream; the engine's messages (`Loaded image: ...`).
    pub async fn load_images<S>(&self, archive: S) -> Result<Vec<String>>
    where
        S: Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let options = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            platform: None,
        };
        let mut progress =
            self.docker
                .import_image(options, bollard::body_try_stream(archive), None);
        let mut messages = Vec::new();
        while let Some(info) = progress.next().await {
            let info = info.map_err(|e| Error::docker("load images into", "the engine", e))?;
            if let Some(line) = info
                .stream
                .as_deref()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                messages.push(line.to_string());
            }
        }
        Ok(messages)
    }
}
