-- A dead letter is one record, not one offset: offsets repeat when the broker or a topic is
-- recreated (the embedded broker starts empty each run), and the old key silently dropped
-- every later poison message at an offset seen before. The digest (shared.consumer
-- record_digest: the record's timestamp, key, value and headers) tells them apart, while a
-- redelivery of the same record still finds its row. Rows from before have no digest and
-- never conflict with a new one.
ALTER TABLE dead_letters ADD COLUMN digest bytea;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_consumer_topic_partition_offset_key;
CREATE UNIQUE INDEX dead_letters_record ON dead_letters (consumer, topic, partition, "offset", digest);
