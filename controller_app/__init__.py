"""The controller app: os-ken routing application, its launcher, REST API and client."""
