DROP TRIGGER set_updated_at ON facilities.rooms;
DROP TABLE facilities.rooms;

DROP TRIGGER set_updated_at ON facilities.locations;
DROP TABLE facilities.locations;

DROP TRIGGER set_updated_at ON facilities.buildings;
DROP TABLE facilities.buildings;
