"""Pure types and rules shared by workflows, activities and the API.

Nothing here imports settings, SQLModel, jinja2 or aiosmtplib, so the workflow sandbox can
import it (workflows pass it through with ``workflow.unsafe.imports_passed_through()``).
"""
