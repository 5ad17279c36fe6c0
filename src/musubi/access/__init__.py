"""Role-based access control: permissions, built-in and custom roles, assignments."""
