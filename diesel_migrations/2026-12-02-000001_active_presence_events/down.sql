DROP TABLE active.presence_events;
