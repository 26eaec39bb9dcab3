//! Reading the change feed: every view's changes untyped ([`FeedReader`], from
//! [`Store::feed_after`](crate::Store::feed_after)), or one view's typed
//! ([`ViewFeed`], from [`View::feed_after`](crate::View::feed_after)); each blocking
//! with a timeout, as an iterator, or as an async `Stream`.

pub(crate) mod reader;
pub(crate) mod typed;
