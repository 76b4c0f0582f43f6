//! `logs` on EC2: each node's job lines read from its console output, polled while following.

use super::*;

/// Where one node's log stream is.
pub(super) struct NodeLog {
    reader: Arc<LogReader>,
    instance_id: String,
    /// The number of the last job line emitted.
    last: u64,
    /// The user data's own messages emitted.
    notes: usize,
    /// Lines to keep at the first read (`--tail`), until it is applied.
    tail: Option<usize>,
    done: bool,
}

/// Reads console output for a log stream.
pub(super) struct LogReader {
    pub(super) client: Client,
    pub(super) poll_interval: Duration,
    pub(super) region: String,
    pub(super) follow: bool,
    pub(super) tail: Option<usize>,
}

impl LogReader {
    /// One node's job lines: what is there now, then (with `follow`) new lines as they come,
    /// until the job's exit line or the instance ends.
    pub(super) fn node_lines(self: Arc<Self>, instance_id: String, rank: u32) -> LogStream {
        let start = NodeLog {
            reader: self.clone(),
            instance_id,
            last: 0,
            notes: 0,
            tail: self.tail,
            done: false,
        };
        futures::stream::unfold(start, move |mut node| async move {
            if node.done {
                return None;
            }
            let mut first = true;
            loop {
                if !first {
                    tokio::time::sleep(node.reader.poll_interval).await;
                }
                first = false;
                let text =
                    match console_output(&node.reader.client, &node.reader.region, &node.instance_id).await {
                        Ok(text) => text,
                        Err(err) if err.is_not_found() => return None,
                        Err(err) => {
                            node.done = true;
                            return Some((vec![Err(err)], node));
                        }
                    };
                let job = parse_console(&text, 1);
                let (mut fresh, mut cut) = job.since(node.last, node.notes);
                // `tail` applies to what is there at the first read only.
                if let Some(tail) = node.tail.take() {
                    fresh.drain(..fresh.len().saturating_sub(tail));
                    cut = 0;
                }
                let mut new: Vec<Result<LogLine, ProviderError>> = Vec::new();
                if cut > 0 {
                    new.push(Ok(LogLine {
                        node: rank,
                        text: format!(
                            "[skyplan: {cut} lines were cut from this node's console output before they were read \
                             (EC2 keeps the last 64 KiB); the node keeps them all in /opt/skyplan/job-1.log]"
                        ),
                    }));
                }
                for (number, text) in fresh {
                    if number == 0 {
                        node.notes += 1;
                    } else {
                        node.last = number;
                    }
                    new.push(Ok(LogLine {
                        node: rank,
                        text: text.to_string(),
                    }));
                }
                node.done = job.exit_code.is_some()
                    || !node.reader.follow
                    || !node.reader.instance_alive(&node.instance_id).await;
                if !new.is_empty() || node.done {
                    return Some((new, node));
                }
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }

    pub(super) async fn instance_alive(&self, id: &str) -> bool {
        let filters = vec![
            Filter::builder().name("instance-id").values(id).build(),
            live_state_filter(),
        ];
        match describe_instances(&self.client, &self.region, filters).await {
            Ok(instances) => !instances.is_empty(),
            // Unknown: keep following; the next poll asks again.
            Err(_) => true,
        }
    }
}
